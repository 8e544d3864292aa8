# mk/bert.mk — the BERT embedder (src/embed_bert.c) needs ICU's common
# library for Unicode categories, case mapping and NFD (BERT's tokenizer).
# tests/unit/test_embed_bert.c builds its PyTorch reference itself (see
# tests/embed_bert/make_ref.py) under $(B)/bert-ref.
LDLIBS += -licuuc
