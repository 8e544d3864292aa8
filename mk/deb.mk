# mk/deb.mk — `make deb`: the Debian package (debian/, dpkg-buildpackage),
# and `make check-package`: build it, run lintian, unpack it into a scratch
# root and start the packaged daemon from there (scripts/check-package.sh).
#
# The package is built from a copy of the working tree (tracked and
# untracked files git does not ignore, plus the encoder's weights) under
# build/pkg/, so dpkg-buildpackage writes its .deb, .buildinfo and .changes
# into build/pkg/ and never next to the repository. Slow (a full release
# build): not part of `make test`.
PKG_DIR := build/pkg

.PHONY: deb check-package
deb:
	@scripts/deps.sh build package
	@test -f data/models/use-lite/model.json || scripts/fetch-use-model.sh
	rm -rf $(PKG_DIR)/src && mkdir -p $(PKG_DIR)/src
	git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t $(PKG_DIR)/src
	mkdir -p $(PKG_DIR)/src/data/models && cp -r data/models/use-lite $(PKG_DIR)/src/data/models/
	cd $(PKG_DIR)/src && dpkg-buildpackage -us -uc -b -j2
	@ls -l $(PKG_DIR)/*.deb

check-package: deb
	scripts/check-package.sh $(PKG_DIR)
