/*
 * policy.c — when not to cache: the per-request decision and the check of
 * the upstream response before it is stored.
 *
 * Design
 *   A request gets one of three actions, CACHE (exact + semantic), EXACT_ONLY
 *   or BYPASS, plus a TTL class and a reason. Each built-in rule proposes an
 *   action; the strongest wins (BYPASS > EXACT_ONLY > CACHE), the shortest
 *   TTL wins, and the reason is the first rule, in LLMC_FIRED_* bit order,
 *   that proposed the winning action. Every rule that matched is reported in
 *   decision.fired so metrics can count them.
 *
 *   The text rules (time-relative, financial, code) look at the query text
 *   (the last user message; the code rule also at the system prompt), with
 *   a lexicon of phrases: a phrase is one
 *   to five words, each a literal (plurals in -s/-es accepted), "*" (any
 *   word), "#" (a number or ordinal, "3", "3rd") or a word class "@month",
 *   "@weekday", "@lang", "@ccy", "@cverb", "@cnoun". A phrase prefixed with
 *   "!" is an exception: it cancels the matches of its category that lie
 *   inside its span ("chicken stock" is not finance, "electric current" is
 *   not time). Dates ("2024-05-01", "3/5/2024"), tickers ("$AAPL") and code
 *   (``` fences, dense code punctuation) are recognised by small scanners
 *   on the raw bytes. Matching is case-insensitive except for "May" and
 *   "March", which are months only when capitalised. At policy creation
 *   the lexicon is indexed by its last word (sorted array, binary search),
 *   so the scan is linear in the text: per token, a few binary searches and
 *   a check of at most five preceding tokens held in a ring.
 *
 *   Languages: the phrases come in lists, one per language, each with its
 *   ISO 639-1 tag (policy_phrases.h: English, Russian); all lists are
 *   indexed together, so a text is matched against every language at once
 *   and needs no language detection. llmc_policy_rule_langs reads the tags
 *   (for /stats), so what is reported is what the lists hold. For inflected
 *   languages a phrase word may be a stem, "stem~": the stem followed by at
 *   most POLICY_STEM_TAIL more characters. A non-ASCII token looks itself
 *   up as a stem less 0..POLICY_STEM_TAIL final characters, so stems cost
 *   four more binary searches per such token and nothing for ASCII.
 *
 *   The response check reads the JSON body with jansson (OpenAI chat and
 *   completions, the Responses API, Anthropic messages; plain or as SSE
 *   events) and refuses to store tool calls, errors, truncated and filtered
 *   answers; a ``` fence in the answer downgrades it to exact-only.
 *   llmc_policy_check_answer applies the same rules to an answer resp.c has
 *   already parsed (llmc_resp_info: tool calls, truncation, refusal, code
 *   fence), which is what llmc_cache_put uses so a body is parsed once;
 *   both end in policy_resp_apply, the one place that turns the rules that
 *   fired into "refuse" or "exact-only". The phrase lists are in
 *   policy_phrases.h, the tokenizer in words.c.
 *
 * Invariants
 *   - Decisions never fail a request: every error path yields BYPASS with
 *     reason "policy-error", which is always safe.
 *   - check_response only tightens a decision (store 1 -> 0, CACHE ->
 *     EXACT_ONLY), never loosens it.
 *   - Only the first POLICY_SCAN_MAX bytes of the query are scanned.
 *
 * Locking
 *   An llmc_policy is immutable after llmc_policy_new(); share it freely.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "llmcache.h"
#include "resp.h"
#include "words.h"

#define POLICY_SCAN_MAX (64 * 1024)
#define POLICY_PHRASE_WORDS 5
#define POLICY_RING 8
#define POLICY_SPANS 64
#define POLICY_STEM_TAIL 3 /* characters a "stem~" accepts after the stem */

/* ---- lexicon -------------------------------------------------------------- */

#include "policy_phrases.h"

typedef struct {
    const char *key; /* last word or "@class" / "#" */
    unsigned phrase; /* index in lexicon */
} policy_index_ent;

typedef struct {
    char words[POLICY_PHRASE_WORDS][WORDS_TOK_MAX];
    unsigned n;
    int cat;
    int negative;
} policy_compiled;

struct llmc_policy {
    llmc_policy_params p;
    size_t nphrases;
    policy_compiled *ph;     /* nphrases, parallel to policy_lists' phrases */
    policy_index_ent *index; /* nphrases, sorted by key */
};

static int policy_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int policy_in(const char *w, const char *const *list, size_t n)
{
    return bsearch(&w, list, n, sizeof *list, policy_cmp_str) != NULL;
}

#define IN_CLASS(w, arr) policy_in((w), (arr), sizeof(arr) / sizeof(arr[0]))

static int policy_is_number(const words_tok *t)
{
    if (!(t->flags & WORDS_NUM))
        return 0;
    size_t i = 0;
    while (i < t->wl && (isdigit((unsigned char)t->w[i]) || t->w[i] == '.' || t->w[i] == ','))
        i++;
    const char *suf = t->w + i;
    return *suf == 0 || !strcmp(suf, "st") || !strcmp(suf, "nd") || !strcmp(suf, "rd") ||
           !strcmp(suf, "th");
}

/* Does token t belong to class cls ("@month", "#", ...)? */
static int policy_tok_class(const words_tok *t, const char *cls)
{
    if (cls[0] == '#')
        return policy_is_number(t);
    if (!strcmp(cls, "@month")) {
        if ((!strcmp(t->w, "may") || !strcmp(t->w, "march")) && !(t->flags & WORDS_CAP))
            return 0;
        return IN_CLASS(t->w, cls_month);
    }
    if (!strcmp(cls, "@weekday"))
        return IN_CLASS(t->w, cls_weekday);
    if (!strcmp(cls, "@lang"))
        return IN_CLASS(t->w, cls_lang);
    if (!strcmp(cls, "@ccy"))
        return IN_CLASS(t->w, cls_ccy);
    if (!strcmp(cls, "@cverb"))
        return IN_CLASS(t->w, cls_cverb);
    if (!strcmp(cls, "@cnoun"))
        return IN_CLASS(t->w, cls_cnoun);
    return 0;
}

/* Token t's word, with a trailing "'s" removed ("today's" -> "today"). */
static void policy_base(const words_tok *t, char *out)
{
    memcpy(out, t->w, t->wl + 1);
    if (t->wl > 2 && out[t->wl - 2] == '\'' && out[t->wl - 1] == 's')
        out[t->wl - 2] = 0;
}

/* Characters (UTF-8 lead bytes) in s[0..n). */
static size_t policy_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Does token t fit the stem pw ("сегодняшн~"): the stem, then at most
 * POLICY_STEM_TAIL more characters? */
static int policy_stem_match(const char *pw, size_t pl, const words_tok *t)
{
    size_t n = pl - 1;
    return t->wl >= n && !memcmp(t->w, pw, n) &&
           policy_chars(t->w + n, t->wl - n) <= POLICY_STEM_TAIL;
}

/* Does phrase word pw match token t? Literals accept a plural -s / -es;
 * a stem ("word~") accepts up to POLICY_STEM_TAIL more characters. */
static int policy_word_match(const char *pw, const words_tok *t)
{
    if (pw[0] == '*' && pw[1] == 0)
        return 1;
    if (pw[0] == '#' || pw[0] == '@')
        return policy_tok_class(t, pw);
    size_t pl = strlen(pw);
    if (pl > 1 && pw[pl - 1] == '~')
        return policy_stem_match(pw, pl, t);
    if (!strcmp(pw, t->w))
        return 1;
    char b[WORDS_TOK_MAX];
    policy_base(t, b);
    size_t n = strlen(pw), bl = strlen(b);
    if (bl < n || strncmp(b, pw, n) != 0)
        return 0;
    return b[n] == 0 || (!strcmp(b + n, "s") && n >= 3) || (!strcmp(b + n, "es") && n >= 3);
}

static int policy_index_cmp(const void *a, const void *b)
{
    return strcmp(((const policy_index_ent *)a)->key, ((const policy_index_ent *)b)->key);
}

#define POLICY_NLISTS (sizeof policy_lists / sizeof policy_lists[0])

/* Phrase i of the concatenation of policy_lists, in list order. */
static const policy_phrase *policy_phrase_at(size_t i)
{
    for (size_t l = 0; l < POLICY_NLISTS; l++) {
        if (i < policy_lists[l].n)
            return &policy_lists[l].phrases[i];
        i -= policy_lists[l].n;
    }
    return NULL;
}

static int policy_compile(llmc_policy *pol)
{
    size_t n = 0;
    for (size_t l = 0; l < POLICY_NLISTS; l++)
        n += policy_lists[l].n;
    pol->ph = calloc(n, sizeof *pol->ph);
    pol->index = calloc(n, sizeof *pol->index);
    if (!pol->ph || !pol->index)
        return LLMC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        policy_compiled *c = &pol->ph[i];
        const policy_phrase *src = policy_phrase_at(i);
        const char *s = src->phrase;
        c->cat = src->cat;
        if (*s == '!') {
            c->negative = 1;
            s++;
        }
        while (*s) {
            while (*s == ' ')
                s++;
            size_t k = strcspn(s, " ");
            if (!k)
                break;
            if (c->n == POLICY_PHRASE_WORDS || k >= WORDS_TOK_MAX)
                return LLMC_EINVAL;
            memcpy(c->words[c->n], s, k);
            c->words[c->n][k] = 0;
            c->n++;
            s += k;
        }
        if (!c->n)
            return LLMC_EINVAL;
        pol->index[i].key = c->words[c->n - 1];
        pol->index[i].phrase = (unsigned)i;
    }
    qsort(pol->index, n, sizeof *pol->index, policy_index_cmp);
    pol->nphrases = n;
    return 0;
}

/* ---- scanning ------------------------------------------------------------ */

typedef struct {
    size_t start, end; /* byte span */
    int cat;
} policy_span;

typedef struct {
    policy_span pos[POLICY_SPANS];
    unsigned npos;
    policy_span neg[POLICY_SPANS];
    unsigned nneg;
    int overflow[CAT_N];
} policy_hits;

static void policy_add_hit(policy_hits *h, int cat, int negative, size_t start, size_t end)
{
    policy_span sp = {start, end, cat};
    if (negative) {
        if (h->nneg < POLICY_SPANS)
            h->neg[h->nneg++] = sp;
    } else if (h->npos < POLICY_SPANS) {
        h->pos[h->npos++] = sp;
    } else {
        h->overflow[cat] = 1; /* too many to check: count it as a hit */
    }
}

/* Try every phrase whose last word is key, ending at ring[cur]. */
static void policy_try_key(const llmc_policy *pol, const char *key, const words_tok *ring,
                           unsigned have, unsigned cur, policy_hits *h)
{
    policy_index_ent probe = {key, 0};
    policy_index_ent *e =
        bsearch(&probe, pol->index, pol->nphrases, sizeof *pol->index, policy_index_cmp);
    if (!e)
        return;
    while (e > pol->index && !strcmp(e[-1].key, key))
        e--;
    for (; e < pol->index + pol->nphrases && !strcmp(e->key, key); e++) {
        const policy_compiled *c = &pol->ph[e->phrase];
        if (c->n > have)
            continue;
        int ok = policy_word_match(c->words[c->n - 1], &ring[cur]);
        for (unsigned k = 1; ok && k < c->n; k++) {
            const words_tok *t = &ring[(cur + POLICY_RING - k) % POLICY_RING];
            ok = policy_word_match(c->words[c->n - 1 - k], t);
        }
        if (ok) {
            const words_tok *first = &ring[(cur + POLICY_RING - (c->n - 1)) % POLICY_RING];
            policy_add_hit(h, c->cat, c->negative, first->off, ring[cur].off + ring[cur].len);
        }
    }
}

static const char *const policy_classes[] = {"#",    "@month", "@weekday", "@lang",
                                             "@ccy", "@cverb", "@cnoun"};

/* Explicit numeric dates: YYYY-MM-DD, YYYY/MM/DD, D/M/YYYY, D.M.YY, D-M-YYYY. */
static int policy_scan_dates(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || (i > 0 && isalnum((unsigned char)s[i - 1])))
            continue;
        size_t f[3] = {0, 0, 0}, j = i;
        char sep = 0;
        int k;
        for (k = 0; k < 3; k++) {
            size_t st = j;
            while (j < len && isdigit((unsigned char)s[j]))
                j++;
            f[k] = j - st;
            if (!f[k])
                break;
            if (k < 2) {
                if (j >= len || (s[j] != '-' && s[j] != '/' && s[j] != '.'))
                    break;
                if (k == 0)
                    sep = s[j];
                else if (s[j] != sep)
                    break;
                j++;
            }
        }
        if (k < 2 || (k == 2 && !f[2]))
            continue;
        if (j < len &&
            (isalnum((unsigned char)s[j]) ||
             ((s[j] == '.' || s[j] == '/') && j + 1 < len && isdigit((unsigned char)s[j + 1]))))
            continue; /* version numbers like 1.2.3.4, IPs */
        if (f[0] == 4 && f[1] <= 2 && f[2] <= 2 && sep != '.')
            return 1;
        if (f[0] <= 2 && f[1] <= 2 && (f[2] == 4 || (f[2] == 2 && sep == '/')))
            return 1;
    }
    return 0;
}

/* "$AAPL": a dollar sign, 2 to 5 capitals, then not a letter. */
static int policy_scan_ticker(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '$')
            continue;
        size_t j = i + 1;
        while (j < len && isupper((unsigned char)s[j]))
            j++;
        if (j - i - 1 >= 2 && j - i - 1 <= 5 && (j == len || !isalpha((unsigned char)s[j])))
            return 1;
    }
    return 0;
}

/* Code in the text: a ``` or ~~~ fence, "#include", or dense code punctuation. */
static int policy_scan_code(const char *s, size_t len)
{
    if (memmem(s, len, "```", 3) || memmem(s, len, "~~~", 3) || memmem(s, len, "#include", 8))
        return 1;
    static const char *const marks[] = {";\n", "){", ") {", "=>",  "->",   "::",      "==",
                                        "!=",  "&&", "||",  "();", "def ", "return ", "[i]"};
    int score = 0;
    for (size_t m = 0; m < sizeof marks / sizeof marks[0]; m++) {
        const char *p = s;
        size_t left = len, ml = strlen(marks[m]);
        const char *q;
        while ((q = memmem(p, left, marks[m], ml)) != NULL && score < 4) {
            score++;
            left -= (size_t)(q - p) + ml;
            p = q + ml;
        }
    }
    return score >= 4;
}

/* Try the stems ("stem~") ring[cur] may fit: its word less 0 to
 * POLICY_STEM_TAIL final characters. Stems are written for inflected
 * (non-ASCII) languages only, so ASCII tokens skip this. */
static void policy_try_stems(const llmc_policy *pol, const words_tok *ring, unsigned have,
                             unsigned cur, policy_hits *h)
{
    const words_tok *t = &ring[cur];
    size_t n = t->wl;
    for (int cut = 0; cut <= POLICY_STEM_TAIL && n > 0; cut++) {
        char key[WORDS_TOK_MAX + 1];
        memcpy(key, t->w, n);
        key[n] = '~';
        key[n + 1] = 0;
        policy_try_key(pol, key, ring, have, cur, h);
        do /* drop one character */
            n--;
        while (n > 0 && ((unsigned char)t->w[n] & 0xC0) == 0x80);
    }
}

/* Which categories the text falls in: bit (1 << CAT_*). */
static unsigned policy_scan(const llmc_policy *pol, const char *s, size_t len)
{
    if (!s || !len)
        return 0;
    if (len > POLICY_SCAN_MAX)
        len = POLICY_SCAN_MAX;
    policy_hits h;
    memset(&h, 0, sizeof h);
    words_tok ring[POLICY_RING];
    unsigned have = 0, cur = 0;
    size_t pos = 0;
    words_tok t;
    while (words_next(s, len, &pos, &t)) {
        cur = (have == 0) ? 0 : (cur + 1) % POLICY_RING;
        ring[cur] = t;
        if (have < POLICY_RING)
            have++;
        char b[WORDS_TOK_MAX];
        policy_base(&t, b);
        policy_try_key(pol, b, ring, have, cur, &h);
        if (t.wl > 3 && b[strlen(b) - 1] == 's') {
            char st[WORDS_TOK_MAX];
            size_t bl = strlen(b);
            memcpy(st, b, bl - 1);
            st[bl - 1] = 0;
            policy_try_key(pol, st, ring, have, cur, &h);
            if (bl > 4 && st[bl - 2] == 'e') {
                st[bl - 2] = 0;
                policy_try_key(pol, st, ring, have, cur, &h);
            }
        }
        for (size_t c = 0; c < sizeof policy_classes / sizeof policy_classes[0]; c++)
            if (policy_tok_class(&t, policy_classes[c]))
                policy_try_key(pol, policy_classes[c], ring, have, cur, &h);
        if (t.flags & WORDS_NONASCII)
            policy_try_stems(pol, ring, have, cur, &h);
    }
    unsigned cats = 0;
    for (int c = 0; c < CAT_N; c++)
        if (h.overflow[c])
            cats |= 1u << c;
    for (unsigned i = 0; i < h.npos; i++) {
        const policy_span *p = &h.pos[i];
        int cancelled = 0;
        for (unsigned j = 0; j < h.nneg && !cancelled; j++)
            cancelled =
                h.neg[j].cat == p->cat && h.neg[j].start <= p->start && p->end <= h.neg[j].end;
        if (!cancelled)
            cats |= 1u << p->cat;
    }
    if (policy_scan_dates(s, len))
        cats |= 1u << CAT_TIME;
    if (policy_scan_ticker(s, len))
        cats |= 1u << CAT_FIN;
    if (policy_scan_code(s, len))
        cats |= 1u << CAT_CODE;
    return cats;
}

/* ---- languages ------------------------------------------------------------ */

const char *llmc_policy_rule_name(int i)
{
    return (i >= 0 && i < CAT_N) ? policy_cat_name[i] : NULL;
}

int llmc_policy_rule_langs(const char *rule, const char **out, int max)
{
    if (!rule || (!out && max > 0))
        return LLMC_EINVAL;
    int cat = -1;
    for (int c = 0; c < CAT_N; c++)
        if (!strcmp(rule, policy_cat_name[c]))
            cat = c;
    if (cat < 0)
        return LLMC_EINVAL;
    int n = 0;
    for (size_t l = 0; l < POLICY_NLISTS; l++) {
        int serves = 0; /* an exception ("!...") alone serves nothing */
        for (size_t i = 0; i < policy_lists[l].n && !serves; i++)
            serves = policy_lists[l].phrases[i].cat == cat &&
                     policy_lists[l].phrases[i].phrase[0] != '!';
        if (!serves)
            continue;
        if (n < max)
            out[n] = policy_lists[l].lang;
        n++;
    }
    return n;
}

/* ---- params --------------------------------------------------------------- */

llmc_policy_params llmc_policy_default_params(void)
{
    llmc_policy_params p;
    memset(&p, 0, sizeof p);
    p.enabled = 1;
    p.cache_control = 1;
    p.temperature_max = 0.8;
    p.n_rule = 1;
    p.time_relative = LLMC_RULE_BYPASS;
    p.financial = LLMC_RULE_SHORT_TTL;
    p.financial_ttl_s = 300;
    p.code = LLMC_RULE_EXACT_ONLY;
    p.code_answer = LLMC_RULE_EXACT_ONLY;
    p.personal = LLMC_RULE_EXACT_ONLY;
    strcpy(p.personal_header, "X-LLM-Cache-User");
    p.tools = LLMC_RULE_EXACT_ONLY;
    p.truncated = 1;
    return p;
}

static const struct {
    const char *key;
    const char *help;
} policy_keys[] = {
    {"enabled", "on|off"},
    {"cache-control", "on|off (honour the request's Cache-Control header)"},
    {"temperature-max", "a number in [0,2], or off"},
    {"n", "on|off (n > 1 bypasses)"},
    {"time-relative", "bypass|off (on = bypass)"},
    {"financial", "bypass|ttl:<seconds>|off (on = ttl:300)"},
    {"code", "exact-only|bypass|off (on = exact-only)"},
    {"code-answer", "exact-only|bypass|off (on = exact-only)"},
    {"personal", "exact-only|bypass|off (on = exact-only)"},
    {"personal-header", "an HTTP header name of at most 63 characters, or none"},
    {"tools", "exact-only|off (on = exact-only)"},
    {"truncated", "on|off (on = never store finish_reason \"length\")"},
};

static const char *policy_strip_key(const char *key)
{
    return strncmp(key, "policy.", 7) == 0 ? key + 7 : key;
}

const char *llmc_policy_key_help(const char *key)
{
    if (!key)
        return NULL;
    key = policy_strip_key(key);
    for (size_t i = 0; i < sizeof policy_keys / sizeof policy_keys[0]; i++)
        if (!strcmp(key, policy_keys[i].key))
            return policy_keys[i].help;
    return NULL;
}

/* 1 on, 0 off, -1 neither. */
static int policy_bool(const char *v)
{
    static const char *const on[] = {"on", "yes", "true", "1"};
    static const char *const off[] = {"off", "no", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, on[i]))
            return 1;
        if (!strcasecmp(v, off[i]))
            return 0;
    }
    return -1;
}

/* Parse a mode among those allowed (bit mask of 1 << llmc_rule_mode);
 * "on" gives dflt. Returns 0 or LLMC_EINVAL. */
static int policy_mode(const char *v, unsigned allowed, llmc_rule_mode dflt, llmc_rule_mode *out)
{
    llmc_rule_mode m;
    int b = policy_bool(v);
    if (b == 1)
        m = dflt;
    else if (b == 0)
        m = LLMC_RULE_OFF;
    else if (!strcasecmp(v, "bypass"))
        m = LLMC_RULE_BYPASS;
    else if (!strcasecmp(v, "exact-only") || !strcasecmp(v, "exact_only"))
        m = LLMC_RULE_EXACT_ONLY;
    else
        return LLMC_EINVAL;
    if (!(allowed & (1u << m)))
        return LLMC_EINVAL;
    *out = m;
    return 0;
}

/* Strict decimal integer in [lo, hi]. */
static int policy_long(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return LLMC_EINVAL;
    *out = x;
    return 0;
}

int llmc_policy_set(llmc_policy_params *p, const char *key, const char *value)
{
    if (!p || !key || !value)
        return LLMC_EINVAL;
    key = policy_strip_key(key);
    if (!llmc_policy_key_help(key))
        return LLMC_ENOTFOUND;
    while (isspace((unsigned char)*value))
        value++;
    char v[128];
    size_t vl = strlen(value);
    while (vl && isspace((unsigned char)value[vl - 1]))
        vl--;
    if (vl >= sizeof v)
        return LLMC_EINVAL;
    memcpy(v, value, vl);
    v[vl] = 0;
    const unsigned EO = 1u << LLMC_RULE_EXACT_ONLY, BP = 1u << LLMC_RULE_BYPASS,
                   OF = 1u << LLMC_RULE_OFF;
    int b = policy_bool(v);
    if (!strcmp(key, "enabled") || !strcmp(key, "cache-control") || !strcmp(key, "n") ||
        !strcmp(key, "truncated")) {
        if (b < 0)
            return LLMC_EINVAL;
        if (!strcmp(key, "enabled"))
            p->enabled = b;
        else if (!strcmp(key, "cache-control"))
            p->cache_control = b;
        else if (!strcmp(key, "n"))
            p->n_rule = b;
        else
            p->truncated = b;
        return 0;
    }
    if (!strcmp(key, "temperature-max")) {
        if (b == 0) {
            p->temperature_max = -1;
            return 0;
        }
        char *end;
        errno = 0;
        double t = strtod(v, &end);
        if (end == v || *end || errno || !(t >= 0 && t <= 2))
            return LLMC_EINVAL;
        p->temperature_max = t;
        return 0;
    }
    if (!strcmp(key, "time-relative"))
        return policy_mode(v, BP | OF, LLMC_RULE_BYPASS, &p->time_relative);
    if (!strcmp(key, "financial")) {
        if (!strncasecmp(v, "ttl:", 4)) {
            long s;
            if (policy_long(v + 4, 1, 365L * 86400, &s))
                return LLMC_EINVAL;
            p->financial = LLMC_RULE_SHORT_TTL;
            p->financial_ttl_s = s;
            return 0;
        }
        if (b == 1) {
            p->financial = LLMC_RULE_SHORT_TTL;
            return 0;
        }
        return policy_mode(v, BP | OF, LLMC_RULE_BYPASS, &p->financial);
    }
    if (!strcmp(key, "code"))
        return policy_mode(v, EO | BP | OF, LLMC_RULE_EXACT_ONLY, &p->code);
    if (!strcmp(key, "code-answer"))
        return policy_mode(v, EO | BP | OF, LLMC_RULE_EXACT_ONLY, &p->code_answer);
    if (!strcmp(key, "personal"))
        return policy_mode(v, EO | BP | OF, LLMC_RULE_EXACT_ONLY, &p->personal);
    if (!strcmp(key, "tools"))
        return policy_mode(v, EO | OF, LLMC_RULE_EXACT_ONLY, &p->tools);
    if (!strcmp(key, "personal-header")) {
        if (!strcasecmp(v, "none")) {
            p->personal_header[0] = 0;
            return 0;
        }
        if (!vl || vl >= sizeof p->personal_header)
            return LLMC_EINVAL;
        for (size_t i = 0; i < vl; i++) /* RFC 9110 token characters */
            if (!isalnum((unsigned char)v[i]) && !strchr("!#$%&'*+-.^_`|~", v[i]))
                return LLMC_EINVAL;
        memcpy(p->personal_header, v, vl + 1);
        return 0;
    }
    return LLMC_ENOTFOUND; /* unreachable: every key in policy_keys is handled */
}

/* ---- object --------------------------------------------------------------- */

static int policy_params_valid(const llmc_policy_params *p)
{
    if (p->time_relative != LLMC_RULE_OFF && p->time_relative != LLMC_RULE_BYPASS)
        return 0;
    if (p->financial != LLMC_RULE_OFF && p->financial != LLMC_RULE_BYPASS &&
        p->financial != LLMC_RULE_SHORT_TTL)
        return 0;
    if (p->financial == LLMC_RULE_SHORT_TTL && p->financial_ttl_s <= 0)
        return 0;
    if ((unsigned)p->code > LLMC_RULE_BYPASS || (unsigned)p->code_answer > LLMC_RULE_BYPASS ||
        (unsigned)p->personal > LLMC_RULE_BYPASS)
        return 0;
    if (p->tools != LLMC_RULE_OFF && p->tools != LLMC_RULE_EXACT_ONLY)
        return 0;
    if (isnan(p->temperature_max))
        return 0;
    if (!memchr(p->personal_header, 0, sizeof p->personal_header))
        return 0;
    return 1;
}

llmc_policy *llmc_policy_new(const llmc_policy_params *p, int *err)
{
    llmc_policy_params d = llmc_policy_default_params();
    if (!p)
        p = &d;
    if (!policy_params_valid(p)) {
        if (err)
            *err = LLMC_EINVAL;
        return NULL;
    }
    llmc_policy *pol = calloc(1, sizeof *pol);
    if (!pol) {
        if (err)
            *err = LLMC_ENOMEM;
        return NULL;
    }
    pol->p = *p;
    int e = policy_compile(pol);
    if (e) {
        llmc_policy_free(pol);
        if (err)
            *err = e;
        return NULL;
    }
    return pol;
}

void llmc_policy_free(llmc_policy *pol)
{
    if (!pol)
        return;
    free(pol->ph);
    free(pol->index);
    free(pol);
}

const char *llmc_policy_personal_header(const llmc_policy *pol)
{
    return pol ? pol->p.personal_header : "";
}

const char *llmc_policy_action_name(llmc_policy_action a)
{
    switch (a) {
    case LLMC_POLICY_CACHE:
        return "cache";
    case LLMC_POLICY_EXACT_ONLY:
        return "exact-only";
    case LLMC_POLICY_BYPASS:
        return "bypass";
    }
    return "bypass";
}

/* ---- decision -------------------------------------------------------------- */

typedef struct {
    llmc_policy_decision *d;
    int best; /* strongest action proposed so far, -1 none */
} policy_acc;

/* Record that a rule fired, proposing action a (CACHE for TTL-only rules). */
static void policy_fire(policy_acc *acc, uint32_t bit, llmc_policy_action a, const char *reason)
{
    acc->d->fired |= bit;
    if ((int)a > acc->best) {
        acc->best = (int)a;
        acc->d->reason = reason;
    }
}

static void policy_ttl(llmc_policy_decision *d, llmc_policy_ttl_class cls, long s)
{
    if (d->ttl_s == 0 || s < d->ttl_s) {
        d->ttl_s = s;
        d->ttl_class = cls;
    }
}

static void policy_apply_action(llmc_policy_decision *d, llmc_policy_action a)
{
    d->action = a;
    if (a == LLMC_POLICY_BYPASS) {
        d->lookup = 0;
        d->store = 0;
        d->semantic = 0;
    } else if (a == LLMC_POLICY_EXACT_ONLY) {
        d->semantic = 0;
    }
}

static llmc_policy_action policy_mode_action(llmc_rule_mode m)
{
    return m == LLMC_RULE_BYPASS       ? LLMC_POLICY_BYPASS
           : m == LLMC_RULE_EXACT_ONLY ? LLMC_POLICY_EXACT_ONLY
                                       : LLMC_POLICY_CACHE;
}

/* Parse a Cache-Control request header into the decision. */
static void policy_cache_control(const char *v, policy_acc *acc)
{
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t k = n;
        while (k && (v[k - 1] == ' ' || v[k - 1] == '\t'))
            k--;
        if (k == 8 && !strncasecmp(v, "no-store", 8)) {
            policy_fire(acc, LLMC_FIRED_NO_STORE, LLMC_POLICY_BYPASS, "no-store");
        } else if (k == 8 && !strncasecmp(v, "no-cache", 8)) {
            acc->d->lookup = 0;
            policy_fire(acc, LLMC_FIRED_NO_CACHE, LLMC_POLICY_CACHE, "no-cache");
        } else if (k > 8 && !strncasecmp(v, "max-age=", 8)) {
            char num[24];
            size_t nl = k - 8;
            long s;
            if (nl < sizeof num) {
                memcpy(num, v + 8, nl);
                num[nl] = 0;
                if (policy_long(num, 0, 100L * 365 * 86400, &s) == 0) {
                    if (s == 0) {
                        acc->d->lookup = 0;
                        policy_fire(acc, LLMC_FIRED_NO_CACHE, LLMC_POLICY_CACHE, "no-cache");
                    } else {
                        if (acc->d->max_age_s < 0 || s < acc->d->max_age_s)
                            acc->d->max_age_s = s;
                        policy_ttl(acc->d, LLMC_POLICY_TTL_REQUEST, s);
                        policy_fire(acc, LLMC_FIRED_MAX_AGE, LLMC_POLICY_CACHE, "max-age");
                    }
                }
            }
        }
        v += n;
    }
}

/* Which kind of endpoint: 0 semantic-capable, 1 exact only, 2 not cacheable. */
static int policy_endpoint(const char *ep)
{
    if (!ep || !*ep)
        return 0;
    if (strstr(ep, "embeddings"))
        return 1;
    if (strstr(ep, "completions") || strstr(ep, "/responses") || strstr(ep, "/messages") ||
        !strcmp(ep, "responses") || !strcmp(ep, "messages"))
        return 0;
    return 2;
}

int llmc_policy_decide(const llmc_policy *pol, const llmc_policy_request *req,
                       llmc_policy_decision *out)
{
    if (!out)
        return LLMC_EINVAL;
    memset(out, 0, sizeof *out);
    out->max_age_s = -1;
    if (!pol || !req) {
        policy_apply_action(out, LLMC_POLICY_BYPASS);
        out->reason = "policy-error";
        return LLMC_EINVAL;
    }
    out->action = LLMC_POLICY_CACHE;
    out->lookup = out->store = out->semantic = 1;
    out->reason = "default";
    const llmc_policy_params *p = &pol->p;
    if (!p->enabled) {
        out->reason = "policy-off";
        return 0;
    }
    policy_acc acc = {out, -1};

    if (p->cache_control && req->cache_control)
        policy_cache_control(req->cache_control, &acc);
    int ep = policy_endpoint(req->endpoint);
    if (ep == 2)
        policy_fire(&acc, LLMC_FIRED_ENDPOINT, LLMC_POLICY_BYPASS, "endpoint");
    if (p->n_rule && req->n > 1)
        policy_fire(&acc, LLMC_FIRED_N, LLMC_POLICY_BYPASS, "n>1");
    if (p->temperature_max >= 0 && !isnan(req->temperature) &&
        req->temperature > p->temperature_max)
        policy_fire(&acc, LLMC_FIRED_TEMPERATURE, LLMC_POLICY_BYPASS, "temperature");

    unsigned cats = 0;
    if (ep != 1 && (p->time_relative || p->financial || p->code))
        cats = policy_scan(pol, req->query_text, req->query_len);
    if (p->time_relative && (cats & (1u << CAT_TIME)))
        policy_fire(&acc, LLMC_FIRED_TIME, LLMC_POLICY_BYPASS, "time-relative");
    if (p->financial && (cats & (1u << CAT_FIN))) {
        if (p->financial == LLMC_RULE_SHORT_TTL)
            policy_ttl(out, LLMC_POLICY_TTL_SHORT, p->financial_ttl_s);
        policy_fire(&acc, LLMC_FIRED_FINANCIAL, policy_mode_action(p->financial), "financial");
    }
    if (p->code && (cats & (1u << CAT_CODE)))
        policy_fire(&acc, LLMC_FIRED_CODE, policy_mode_action(p->code), "code");
    /* A system prompt that asks for code makes every request of the
     * conversation code generation ("You are a Python assistant; answer
     * with code"). Only the code rule reads it: "today" or a price in a
     * system prompt says nothing about the question, and a date there
     * already gives each day its own partition. */
    else if (p->code && ep != 1 && req->system_text && req->system_len &&
             (policy_scan(pol, req->system_text, req->system_len) & (1u << CAT_CODE)))
        policy_fire(&acc, LLMC_FIRED_CODE, policy_mode_action(p->code), "code (system prompt)");
    int personal = (req->user && *req->user) || (req->personal && *req->personal);
    if (p->personal && personal) {
        out->scope_user = 1;
        policy_fire(&acc, LLMC_FIRED_PERSONAL, policy_mode_action(p->personal), "personalised");
    }
    if (p->tools && req->has_tools)
        policy_fire(&acc, LLMC_FIRED_TOOLS, LLMC_POLICY_EXACT_ONLY, "tools");
    if (!req->query_text || !req->query_len)
        policy_fire(&acc, LLMC_FIRED_NO_QUERY, LLMC_POLICY_EXACT_ONLY, "no-query");
    if (ep == 1)
        policy_fire(&acc, LLMC_FIRED_ENDPOINT, LLMC_POLICY_EXACT_ONLY, "embeddings");

    if (acc.best >= 0)
        policy_apply_action(out, (llmc_policy_action)acc.best);
    if (out->action == LLMC_POLICY_BYPASS) {
        out->ttl_s = 0;
        out->ttl_class = LLMC_POLICY_TTL_DEFAULT;
    }
    return 0;
}

/* ---- response check ------------------------------------------------------- */

typedef struct {
    uint32_t fired;
    words_fence fence; /* a ``` fence, carried across content pieces */
} policy_resp;

static void policy_text(policy_resp *r, const char *s)
{
    words_fence_scan(&r->fence, s);
}

static int policy_jstr_is(json_t *o, const char *key, const char *val)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && !strcmp(s, val);
}

static int policy_nonempty(json_t *v)
{
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return 1;
}

/* Content as a string or an array of parts {type, text} (resp.c reads it). */
static void policy_content(policy_resp *r, json_t *c)
{
    if (resp_content_scan(c, &r->fence))
        r->fired |= LLMC_FIRED_RESP_TOOL;
}

static void policy_finish(policy_resp *r, const char *fr)
{
    if (!fr)
        return;
    if (!strcmp(fr, "length") || !strcmp(fr, "max_tokens") || !strcmp(fr, "max_output_tokens"))
        r->fired |= LLMC_FIRED_RESP_TRUNC;
    else if (!strcmp(fr, "tool_calls") || !strcmp(fr, "function_call") || !strcmp(fr, "tool_use"))
        r->fired |= LLMC_FIRED_RESP_TOOL;
    else if (!strcmp(fr, "content_filter") || !strcmp(fr, "refusal"))
        r->fired |= LLMC_FIRED_RESP_INVALID;
}

/* Inspect one JSON document: a whole response or one stream event. */
static void policy_inspect(policy_resp *r, json_t *o)
{
    if (!json_is_object(o)) {
        r->fired |= LLMC_FIRED_RESP_INVALID;
        return;
    }
    if (policy_nonempty(json_object_get(o, "error")) || policy_jstr_is(o, "type", "error"))
        r->fired |= LLMC_FIRED_RESP_INVALID;
    /* OpenAI chat / completions, whole or chunked. */
    json_t *choices = json_object_get(o, "choices");
    size_t i;
    json_t *ch;
    json_array_foreach(choices, i, ch)
    {
        policy_finish(r, json_string_value(json_object_get(ch, "finish_reason")));
        json_t *parts[2] = {json_object_get(ch, "message"), json_object_get(ch, "delta")};
        for (int k = 0; k < 2; k++) {
            json_t *m = parts[k];
            if (!json_is_object(m))
                continue;
            if (policy_nonempty(json_object_get(m, "tool_calls")) ||
                policy_nonempty(json_object_get(m, "function_call")))
                r->fired |= LLMC_FIRED_RESP_TOOL;
            if (policy_nonempty(json_object_get(m, "refusal")))
                r->fired |= LLMC_FIRED_RESP_INVALID;
            policy_content(r, json_object_get(m, "content"));
        }
        policy_text(r, json_string_value(json_object_get(ch, "text")));
    }
    /* Anthropic messages, whole or as stream events. */
    policy_finish(r, json_string_value(json_object_get(o, "stop_reason")));
    json_t *delta = json_object_get(o, "delta");
    if (json_is_object(delta)) {
        policy_finish(r, json_string_value(json_object_get(delta, "stop_reason")));
        policy_text(r, json_string_value(json_object_get(delta, "text")));
        if (policy_jstr_is(delta, "type", "input_json_delta"))
            r->fired |= LLMC_FIRED_RESP_TOOL;
    }
    json_t *block = json_object_get(o, "content_block");
    if (json_is_object(block)) {
        json_t *one = json_array();
        if (one) {
            json_array_append(one, block);
            policy_content(r, one);
            json_decref(one);
        }
    }
    if (!choices && json_is_array(json_object_get(o, "content")))
        policy_content(r, json_object_get(o, "content"));
    /* OpenAI Responses API. */
    if (policy_jstr_is(o, "status", "incomplete"))
        r->fired |= LLMC_FIRED_RESP_TRUNC;
    json_t *output = json_object_get(o, "output");
    json_t *item;
    json_array_foreach(output, i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        size_t tl = type ? strlen(type) : 0;
        if (type && tl >= 5 && !strcmp(type + tl - 5, "_call"))
            r->fired |= LLMC_FIRED_RESP_TOOL;
        policy_content(r, json_object_get(item, "content"));
    }
    json_t *resp = json_object_get(o, "response"); /* response.completed events */
    if (json_is_object(resp))
        policy_inspect(r, resp);
}

static int policy_looks_sse(const char *b, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)b[i]))
        i++;
    /* body need not be NUL-terminated: compare only bytes that are there
     * (the fuzzer found "event" read past a 6-byte body) */
    size_t n = len - i;
    return n >= 5 && (!memcmp(b + i, "data:", 5) || (n >= 6 && !memcmp(b + i, "event:", 6)) ||
                      !memcmp(b + i, "id:", 3) || b[i] == ':');
}

/* Walk SSE events; each "data:" line is one JSON document. */
static void policy_sse(policy_resp *r, const char *b, size_t len)
{
    size_t i = 0;
    int docs = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && b[e] != '\n')
            e++;
        size_t le = e;
        if (le > i && b[le - 1] == '\r')
            le--;
        if (le - i >= 5 && !strncmp(b + i, "data:", 5)) {
            size_t s = i + 5;
            while (s < le && b[s] == ' ')
                s++;
            if (!(le - s == 6 && !strncmp(b + s, "[DONE]", 6))) {
                json_error_t jerr;
                json_t *o = json_loadb(b + s, le - s, JSON_ALLOW_NUL, &jerr);
                if (!o) {
                    r->fired |= LLMC_FIRED_RESP_INVALID;
                } else {
                    policy_inspect(r, o);
                    json_decref(o);
                }
                docs++;
            }
        }
        i = e + 1;
    }
    if (!docs)
        r->fired |= LLMC_FIRED_RESP_INVALID;
}

static int policy_resp_apply(const llmc_policy *pol, uint32_t fired, llmc_policy_decision *inout);

int llmc_policy_check_response(const llmc_policy *pol, int http_status, const char *body,
                               size_t len, int is_stream_assembled, llmc_policy_decision *inout)
{
    if (!pol || !inout) {
        if (inout) {
            inout->store = 0;
            inout->reason = "policy-error";
        }
        return LLMC_EINVAL;
    }
    policy_resp r;
    memset(&r, 0, sizeof r);
    if (http_status < 200 || http_status > 299) {
        r.fired |= LLMC_FIRED_RESP_STATUS;
    } else if (!body || !len) {
        r.fired |= LLMC_FIRED_RESP_INVALID;
    } else if (is_stream_assembled && policy_looks_sse(body, len)) {
        policy_sse(&r, body, len);
    } else {
        json_error_t jerr;
        json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
        if (!o) {
            r.fired |= LLMC_FIRED_RESP_INVALID;
        } else {
            policy_inspect(&r, o);
            json_decref(o);
        }
    }
    if (r.fence.found)
        r.fired |= LLMC_FIRED_RESP_CODE;
    return policy_resp_apply(pol, r.fired, inout);
}

/* What the response rules that fired (LLMC_FIRED_RESP_* bits) do to the
 * decision: refuse to store, or downgrade to exact-only. The one place
 * for both checks (raw body and parsed answer). */
static int policy_resp_apply(const llmc_policy *pol, uint32_t fired, llmc_policy_decision *inout)
{
    policy_resp r = {.fired = fired};
    const llmc_policy_params *p = &pol->p;
    if (!p->truncated)
        r.fired &= ~(uint32_t)LLMC_FIRED_RESP_TRUNC;
    if (p->code_answer == LLMC_RULE_OFF)
        r.fired &= ~(uint32_t)LLMC_FIRED_RESP_CODE;
    inout->fired |= r.fired;
    const char *refuse = NULL;
    if (r.fired & LLMC_FIRED_RESP_STATUS)
        refuse = "status";
    else if (r.fired & LLMC_FIRED_RESP_TOOL)
        refuse = "tool-call";
    else if (r.fired & LLMC_FIRED_RESP_TRUNC)
        refuse = "truncated";
    else if (r.fired & LLMC_FIRED_RESP_INVALID)
        refuse = "bad-response";
    else if ((r.fired & LLMC_FIRED_RESP_CODE) && p->code_answer == LLMC_RULE_BYPASS)
        refuse = "code-answer";
    if (refuse) {
        if (inout->store)
            inout->reason = refuse;
        inout->store = 0;
        return 0;
    }
    if ((r.fired & LLMC_FIRED_RESP_CODE) && inout->action == LLMC_POLICY_CACHE) {
        inout->action = LLMC_POLICY_EXACT_ONLY;
        inout->semantic = 0;
        inout->reason = "code-answer";
    }
    return 0;
}

int llmc_policy_check_answer(const llmc_policy *pol, int http_status, const llmc_resp_info *info,
                             llmc_policy_decision *inout)
{
    if (!pol || !inout || !info) {
        if (inout) {
            inout->store = 0;
            inout->reason = "policy-error";
        }
        return LLMC_EINVAL;
    }
    uint32_t fired = 0;
    if (http_status < 200 || http_status > 299)
        return policy_resp_apply(pol, LLMC_FIRED_RESP_STATUS, inout); /* body not looked at */
    if (info->has_tool_calls)
        fired |= LLMC_FIRED_RESP_TOOL;
    if (info->truncated)
        fired |= LLMC_FIRED_RESP_TRUNC;
    if (info->refused)
        fired |= LLMC_FIRED_RESP_INVALID;
    if (info->has_code)
        fired |= LLMC_FIRED_RESP_CODE;
    return policy_resp_apply(pol, fired, inout);
}
