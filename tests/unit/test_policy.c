/*
 * test_policy.c — the when-not-to-cache policy: every rule with a request
 * that triggers it and one that must not, the combination of rules, the
 * configuration keys, and the response check on real response shapes.
 */
#include <math.h>

#include "llmcache.h"
#include "words.h"
#include "unit.h"

static llmc_policy *pol;

static llmc_policy_request req_q(const char *q)
{
    llmc_policy_request r;
    memset(&r, 0, sizeof r);
    r.endpoint = "/v1/chat/completions";
    r.temperature = NAN;
    r.query_text = q;
    r.query_len = q ? strlen(q) : 0;
    return r;
}

static llmc_policy_decision decide_with(const llmc_policy *p, const char *q)
{
    llmc_policy_request r = req_q(q);
    llmc_policy_decision d;
    int rc = llmc_policy_decide(p, &r, &d);
    CHECK_EQ_INT(rc, 0);
    return d;
}

static llmc_policy_decision decide(const char *q)
{
    return decide_with(pol, q);
}

static int fired(const char *q, uint32_t bit)
{
    return (decide(q).fired & bit) != 0;
}

#define TRIG(q, bit)                                                                               \
    do {                                                                                           \
        if (!fired((q), (bit)))                                                                    \
            fprintf(stderr, "  expected %s to fire for: %s\n", #bit, (q));                         \
        CHECK(fired((q), (bit)));                                                                  \
    } while (0)
#define NOTRIG(q, bit)                                                                             \
    do {                                                                                           \
        if (fired((q), (bit)))                                                                     \
            fprintf(stderr, "  expected %s NOT to fire for: %s\n", #bit, (q));                     \
        CHECK(!fired((q), (bit)));                                                                 \
    } while (0)

static void test_default_cache(void)
{
    llmc_policy_decision d = decide("What is the capital of France?");
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK(d.lookup && d.store && d.semantic && !d.scope_user);
    CHECK_EQ_INT(d.fired, 0);
    CHECK(!strcmp(d.reason, "default"));
    CHECK_EQ_INT(d.ttl_s, 0);
    CHECK_EQ_INT(d.max_age_s, -1);
}

static void test_temperature_and_n(void)
{
    llmc_policy_request r = req_q("Explain photosynthesis.");
    llmc_policy_decision d;
    r.temperature = 0.9;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!d.lookup && !d.store && !d.semantic);
    CHECK(!strcmp(d.reason, "temperature"));
    r.temperature = 0.8; /* at the limit: allowed */
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    r.temperature = 0.0;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    r.temperature = NAN; /* absent */
    r.n = 3;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!strcmp(d.reason, "n>1"));
    r.n = 1;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
}

static void test_time_relative(void)
{
    const char *yes[] = {"What's happening now?",
                         "what is the weather today",
                         "Who is currently the CEO of Ford?",
                         "What are the latest iPhone models?",
                         "Show me the news from yesterday",
                         "Will it rain tomorrow in Paris?",
                         "What events are on this week?",
                         "what time is it in Tokyo",
                         "WHAT TIME IS IT",
                         "What happened on 2024-05-01?",
                         "Any concerts on May 3rd?",
                         "Is the office open on 3/5/2024?",
                         "Who won 3 days ago?",
                         "What is today's date?",
                         "Which movies come out next month?",
                         "What is the current exchange of ideas",
                         "events on the 4th of July",
                         "Is the store open on Sunday?",
                         "recent developments in AI",
                         "What\xe2\x80\x99s the time in London?"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        TRIG(yes[i], LLMC_FIRED_TIME);
    const char *no[] = {"Do you know the way to San Jose?",
                        "How is snow formed?",
                        "What is a nowhere man?",
                        "Explain the theory of relativity",
                        "What is electric current?",
                        "May I ask you a question about 3 apples?",
                        "How do I march 5 miles?",
                        "What is version 1.2.3 of the protocol?",
                        "Call 555-123-4567",
                        "Who was the first president of the USA?",
                        "What is a currant?",
                        "Write a poem about the sea.",
                        "Does my news feed show profile changes?",
                        "Did humans leave Africa 75,000 years ago?",
                        "How do I open a current account?"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        NOTRIG(no[i], LLMC_FIRED_TIME);
    llmc_policy_decision d = decide("what is happening now");
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!strcmp(d.reason, "time-relative"));
}

/* Russian: the time/date words, in the forms questions use, with capitals
 * (the tokenizer folds Cyrillic case and ё); words that merely contain a
 * listed word ("завтрак" contains "завтра", "погодите" starts like
 * "погода", "новостройки" like "новости") do not fire. English unchanged
 * (test_time_relative). */
static void test_time_relative_ru(void)
{
    const char *yes[] = {"Какая погода сегодня в Москве?",
                         "СЕГОДНЯ будет дождь?",
                         "Какие новости на сегодняшний день?",
                         "Что показывают в сегодняшнем выпуске?",
                         "Будет ли завтра снег в Казани?",
                         "Что было вчера на бирже?",
                         "Сколько сейчас времени в Токио?",
                         "Который час в Лондоне?",
                         "Какая погода будет на этой неделе?",
                         "Какие фильмы выходят в этом году?",
                         "Расскажи последние новости",
                         "Что произошло 3 часа назад?",
                         "Кто текущий президент Франции?",
                         "Прогноз погоды на выходные",
                         "Что нового в прошлом месяце?",
                         "Какие концерты в эти выходные?",
                         "Что случилось позавчера?",
                         "Почему на улице такая погода?",
                         "Где ещё сегодня открыто?"};
    const char *no_ru[] = {"Как приготовить завтрак из яиц?",
                           "Рецепт вкусного завтрака",
                           "Погодите, объясните теорему Пифагора",
                           "Где купить квартиру в новостройке?",
                           "Последние новостройки в Москве",
                           "Почему небо голубое?",
                           "Как работает электрический ток?",
                           "Сколько дней в високосном году?",
                           "Напиши стихотворение о море",
                           "Какое число больше, 7 или 9?",
                           "Кто написал «Войну и мир»?"};
    /* Each question of a list, then each of the other: one loop. */
    for (size_t i = 0; i < sizeof yes / sizeof yes[0] + sizeof no_ru / sizeof no_ru[0]; i++) {
        if (i < sizeof yes / sizeof yes[0])
            TRIG(yes[i], LLMC_FIRED_TIME);
        else
            NOTRIG(no_ru[i - sizeof yes / sizeof yes[0]], LLMC_FIRED_TIME);
    }
    llmc_policy_decision d = decide("Какая погода сегодня?");
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!strcmp(d.reason, "time-relative"));
    d = decide("Как приготовить завтрак?");
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK(!strcmp(d.reason, "default"));
    /* Exchange rates are the financial rule's, in Russian too. */
    TRIG("Какой курс доллара к рублю?", LLMC_FIRED_FINANCIAL);
    TRIG("Курс евро на бирже", LLMC_FIRED_FINANCIAL);
    NOTRIG("Какой курс лечения ангины?", LLMC_FIRED_FINANCIAL);
    NOTRIG("Курс лекций по физике", LLMC_FIRED_FINANCIAL);
}

/* The tokenizer folds Cyrillic case (and ё to е) and truncates a long word
 * at a character boundary. */
static void test_words_cyrillic(void)
{
    const char *s = "ПОГОДА Ёлка ЗаВтРа "
                    "Превысокомногорассмотрительствующий";
    size_t pos = 0;
    words_tok t;
    CHECK(words_next(s, strlen(s), &pos, &t) && !strcmp(t.w, "погода"));
    CHECK(t.flags & WORDS_NONASCII);
    CHECK(words_next(s, strlen(s), &pos, &t) && !strcmp(t.w, "елка"));
    CHECK(words_next(s, strlen(s), &pos, &t) && !strcmp(t.w, "завтра"));
    CHECK(words_next(s, strlen(s), &pos, &t));
    CHECK_EQ_INT(t.wl, 30); /* 15 two-byte letters fit in WORDS_TOK_MAX-1 */
    CHECK(!strncmp(t.w, "превысокомногор", 30));
    CHECK_EQ_INT(t.len, strlen("Превысокомногорассмотрительствующий"));
    CHECK(!words_next(s, strlen(s), &pos, &t));
}

/* Which languages each rule serves, read from the phrase tables. */
static void test_rule_langs(void)
{
    const char *l[8];
    CHECK_EQ_INT(llmc_policy_rule_langs("time", l, 8), 2);
    CHECK(!strcmp(l[0], "en") && !strcmp(l[1], "ru"));
    CHECK_EQ_INT(llmc_policy_rule_langs("finance", l, 8), 2);
    CHECK_EQ_INT(llmc_policy_rule_langs("code", l, 8), 1);
    CHECK(!strcmp(l[0], "en"));
    CHECK_EQ_INT(llmc_policy_rule_langs("time", l, 1), 2); /* count, one written */
    CHECK_EQ_INT(llmc_policy_rule_langs("weather", l, 8), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_rule_langs(NULL, l, 8), LLMC_EINVAL);
    CHECK(!strcmp(llmc_policy_rule_name(0), "time"));
    CHECK(llmc_policy_rule_name(3) == NULL && llmc_policy_rule_name(-1) == NULL);
    CHECK_EQ_INT(llmc_guard_langs(l, 8), 1);
    CHECK(!strcmp(l[0], "en"));
}

static void test_financial(void)
{
    const char *yes[] = {"What is the price of gold?",
                         "Tesla stock forecast",
                         "How many shares of Apple does Buffett own?",
                         "stock quote for MSFT",
                         "USD to EUR exchange rate",
                         "convert 100 dollars to euros",
                         "What is $AAPL trading at?",
                         "Is bitcoin a good investment?",
                         "How are crypto markets doing",
                         "What is the interest rate of the Fed?",
                         "Prices of used cars",
                         "gbp/usd"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        TRIG(yes[i], LLMC_FIRED_FINANCIAL);
    const char *no[] = {"How do I make chicken stock?",
                        "Is the blue sweater in stock?",
                        "Give me a famous quote by Einstein",
                        "She shares her lunch with me.",
                        "How many pounds to kg is 10?",
                        "What does $5 buy in 1950?",
                        "What is a priceless painting?",
                        "Explain price elasticity of demand",
                        "Give me friendship quotes for a card",
                        "How does the Android stock browser handle cookies?"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        NOTRIG(no[i], LLMC_FIRED_FINANCIAL);
    /* Default action: cache with the short TTL class. */
    llmc_policy_decision d = decide("What is the price of gold?");
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK_EQ_INT(d.ttl_class, LLMC_POLICY_TTL_SHORT);
    CHECK_EQ_INT(d.ttl_s, 300);
    CHECK(!strcmp(d.reason, "financial"));
    /* Configured to bypass. */
    llmc_policy_params p = llmc_policy_default_params();
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.financial", "bypass"), 0);
    llmc_policy *pb = llmc_policy_new(&p, NULL);
    CHECK(pb != NULL);
    d = decide_with(pb, "What is the price of gold?");
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    llmc_policy_free(pb);
}

static void test_code(void)
{
    const char *yes[] = {"Write a function that reverses a string",
                         "write a Python script to rename files",
                         "How do I sort a list in python?",
                         "Implement quicksort",
                         "Give me a regex for email addresses",
                         "Write an SQL query that counts orders",
                         "Fix this:\n```\nint main() { return 0 }\n```",
                         "generate a bash script that backs up /etc",
                         "code to parse JSON in javascript",
                         "for (i = 0; i < n; i++) { if (a[i] == b) return i; } why?"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        TRIG(yes[i], LLMC_FIRED_CODE);
    const char *no[] = {"Write a poem about autumn",         "What does a python eat?",
                        "What is the code of conduct here?", "Tell me about Java island",
                        "Give me a recipe for pancakes",     "Create a workout plan for me"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        NOTRIG(no[i], LLMC_FIRED_CODE);
    llmc_policy_decision d = decide("Write a function that reverses a string");
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(d.lookup && d.store && !d.semantic);
    CHECK(!strcmp(d.reason, "code"));

    /* A system prompt asking for code makes the conversation code
     * generation; other system prompts, and their dates and prices, do not
     * change the decision. */
    const char *sys_yes[] = {"You are a senior Python developer. Write code for every request.",
                             "Answer with a bash script only.",
                             "You generate SQL queries for our analytics database."};
    const char *sys_no[] = {"You are a friendly travel assistant.",
                            "Today is 2026-11-26. Prices are in EUR. Be concise.",
                            "Follow the company's code of conduct in every answer."};
    for (int k = 0; k < 2; k++) {
        const char *const *list = k ? sys_no : sys_yes;
        for (size_t i = 0; i < 3; i++) {
            llmc_policy_request r = req_q("How do I keep my notes in order?");
            r.system_text = list[i];
            r.system_len = strlen(list[i]);
            llmc_policy_decision sd;
            CHECK_EQ_INT(llmc_policy_decide(pol, &r, &sd), 0);
            int exact =
                sd.action == LLMC_POLICY_EXACT_ONLY && !strcmp(sd.reason, "code (system prompt)");
            if (exact != !k)
                fprintf(stderr, "  system prompt %s: %s (%s)\n", list[i],
                        llmc_policy_action_name(sd.action), sd.reason);
            CHECK_EQ_INT(exact, !k);
            if (k)
                CHECK_EQ_INT(sd.action, LLMC_POLICY_CACHE);
        }
    }
}

static void test_personal_tools_endpoint(void)
{
    CHECK(!strcmp(llmc_policy_personal_header(pol), "X-LLM-Cache-User"));
    llmc_policy_request r = req_q("Recommend a book");
    llmc_policy_decision d;
    r.user = "user-42";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(d.scope_user && d.store && d.lookup && !d.semantic);
    CHECK(!strcmp(d.reason, "personalised"));
    r.user = "";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK(!d.scope_user);
    r.personal = "alice";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(d.scope_user);
    r.personal = NULL;
    r.has_tools = 1;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(!strcmp(d.reason, "tools"));
    r.has_tools = 0;
    r.endpoint = "/v1/embeddings";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(!strcmp(d.reason, "embeddings"));
    r.endpoint = "/v1/files";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    r.endpoint = "/v1/completions";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    r.query_text = NULL;
    r.query_len = 0;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(!strcmp(d.reason, "no-query"));
}

static void test_cache_control(void)
{
    llmc_policy_request r = req_q("Explain gravity");
    llmc_policy_decision d;
    r.cache_control = "no-store";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!strcmp(d.reason, "no-store"));
    r.cache_control = "No-Cache";
    llmc_policy_decide(pol, &r, &d);
    CHECK(!d.lookup && d.store);
    CHECK(!strcmp(d.reason, "no-cache"));
    r.cache_control = "private, max-age=60";
    llmc_policy_decide(pol, &r, &d);
    CHECK(d.lookup && d.store);
    CHECK_EQ_INT(d.max_age_s, 60);
    CHECK_EQ_INT(d.ttl_s, 60);
    CHECK_EQ_INT(d.ttl_class, LLMC_POLICY_TTL_REQUEST);
    r.cache_control = "max-age=0";
    llmc_policy_decide(pol, &r, &d);
    CHECK(!d.lookup && d.store);
    r.cache_control = "max-age=abc, max-age=-5";
    llmc_policy_decide(pol, &r, &d);
    CHECK(d.lookup && d.store);
    CHECK_EQ_INT(d.fired, 0);
    /* Shortest TTL wins: financial 300 s vs max-age 60 / 3600. */
    r = req_q("bitcoin price");
    r.cache_control = "max-age=3600";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.ttl_s, 300);
    CHECK_EQ_INT(d.ttl_class, LLMC_POLICY_TTL_SHORT);
    r.cache_control = "max-age=60";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.ttl_s, 60);
    /* Turned off: the header is ignored. */
    llmc_policy_params p = llmc_policy_default_params();
    CHECK_EQ_INT(llmc_policy_set(&p, "cache-control", "off"), 0);
    llmc_policy *po = llmc_policy_new(&p, NULL);
    r = req_q("Explain gravity");
    r.cache_control = "no-store";
    llmc_policy_decide(po, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    llmc_policy_free(po);
}

static void test_combination(void)
{
    /* Bypass beats exact-only; reason names the strongest rule. */
    llmc_policy_request r = req_q("Write a python function that prints today's date");
    llmc_policy_decision d;
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!strcmp(d.reason, "time-relative"));
    CHECK(d.fired & LLMC_FIRED_CODE);
    CHECK(d.fired & LLMC_FIRED_TIME);
    CHECK_EQ_INT(d.ttl_s, 0);
    /* Code + personal: exact-only, first rule named. */
    r = req_q("write a regex for dates");
    r.user = "bob";
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(!strcmp(d.reason, "code"));
    CHECK(d.scope_user);
}

static void test_config(void)
{
    llmc_policy_params p = llmc_policy_default_params();
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.temperature-max", "0.5"), 0);
    CHECK(p.temperature_max == 0.5);
    CHECK_EQ_INT(llmc_policy_set(&p, "temperature-max", "3"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "temperature-max", "0.5x"), LLMC_EINVAL);
    CHECK(p.temperature_max == 0.5);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.nonsense", "on"), LLMC_ENOTFOUND);
    CHECK(llmc_policy_key_help("policy.nonsense") == NULL);
    CHECK(llmc_policy_key_help("policy.financial") != NULL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.time-relative", "off"), 0);
    CHECK_EQ_INT(p.time_relative, LLMC_RULE_OFF);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.time-relative", "exact-only"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.time-relative", "ON"), 0);
    CHECK_EQ_INT(p.time_relative, LLMC_RULE_BYPASS);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.financial", "ttl:120"), 0);
    CHECK_EQ_INT(p.financial, LLMC_RULE_SHORT_TTL);
    CHECK_EQ_INT(p.financial_ttl_s, 120);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.financial", "ttl:0"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.financial", "ttl:"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.financial", "sometimes"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.code", "exact-only"), 0);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.code", "off"), 0);
    CHECK_EQ_INT(p.code, LLMC_RULE_OFF);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.tools", "bypass"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.personal-header", " X-User-Id "), 0);
    CHECK(!strcmp(p.personal_header, "X-User-Id"));
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.personal-header", "bad header"), LLMC_EINVAL);
    CHECK_EQ_INT(
        llmc_policy_set(&p, "policy.personal-header",
                        "X-0123456789012345678901234567890123456789012345678901234567890123"),
        LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.personal-header", "none"), 0);
    CHECK_EQ_INT(p.personal_header[0], 0);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.n", "maybe"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.n", "no"), 0);
    CHECK_EQ_INT(p.n_rule, 0);
    CHECK_EQ_INT(llmc_policy_set(NULL, "policy.n", "no"), LLMC_EINVAL);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.temperature-max", "off"), 0);
    CHECK_EQ_INT(llmc_policy_set(&p, "policy.time-relative", "no"), 0);
    /* The configured policy behaves as configured. */
    llmc_policy *pc = llmc_policy_new(&p, NULL);
    CHECK(pc != NULL);
    llmc_policy_request r = req_q("What is the weather today? Write a function.");
    r.temperature = 1.5;
    r.n = 4;
    llmc_policy_decision d;
    llmc_policy_decide(pc, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK_EQ_INT(d.fired, 0);
    llmc_policy_free(pc);
    /* Disabled entirely. */
    p = llmc_policy_default_params();
    CHECK_EQ_INT(llmc_policy_set(&p, "enabled", "false"), 0);
    pc = llmc_policy_new(&p, NULL);
    r = req_q("what is happening now");
    llmc_policy_decide(pc, &r, &d);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    llmc_policy_free(pc);
    /* Inconsistent params are refused. */
    p = llmc_policy_default_params();
    p.tools = LLMC_RULE_BYPASS;
    int err = 0;
    CHECK(llmc_policy_new(&p, &err) == NULL);
    CHECK_EQ_INT(err, LLMC_EINVAL);
}

static void test_errors_never_fail(void)
{
    llmc_policy_decision d;
    CHECK_EQ_INT(llmc_policy_decide(NULL, NULL, &d), LLMC_EINVAL);
    CHECK_EQ_INT(d.action, LLMC_POLICY_BYPASS);
    CHECK(!d.store && !d.lookup);
    CHECK(!strcmp(d.reason, "policy-error"));
    CHECK_EQ_INT(llmc_policy_decide(pol, NULL, NULL), LLMC_EINVAL);
    /* Hostile text: binary bytes, no NUL, huge. */
    size_t n = 200000;
    char *big = malloc(n);
    CHECK(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 131 + 7);
    llmc_policy_request r = req_q(NULL);
    r.query_text = big;
    r.query_len = n;
    CHECK_EQ_INT(llmc_policy_decide(pol, &r, &d), 0);
    memset(big, 'a', n);
    memcpy(big + n - 4, " now", 4); /* beyond the scanned window: not seen */
    CHECK_EQ_INT(llmc_policy_decide(pol, &r, &d), 0);
    CHECK(!(d.fired & LLMC_FIRED_TIME));
    memcpy(big, "now ", 4);
    CHECK_EQ_INT(llmc_policy_decide(pol, &r, &d), 0);
    CHECK(d.fired & LLMC_FIRED_TIME);
    free(big);
    CHECK(!strcmp(llmc_policy_action_name(LLMC_POLICY_EXACT_ONLY), "exact-only"));
}

static llmc_policy_decision check_resp(int status, const char *body, int sse)
{
    llmc_policy_decision d = decide("Tell me about whales");
    CHECK_EQ_INT(llmc_policy_check_response(pol, status, body, body ? strlen(body) : 0, sse, &d),
                 0);
    return d;
}

static void test_response(void)
{
    const char *ok = "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                     "\"message\":{\"role\":\"assistant\",\"content\":\"Whales are mammals.\"},"
                     "\"finish_reason\":\"stop\"}]}";
    llmc_policy_decision d = check_resp(200, ok, 0);
    CHECK(d.store);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    CHECK(!strcmp(d.reason, "default"));

    d = check_resp(500, ok, 0);
    CHECK(!d.store);
    CHECK(!strcmp(d.reason, "status"));
    d = check_resp(429, "{\"error\":{\"message\":\"rate\"}}", 0);
    CHECK(!d.store);

    const char *tool =
        "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}"
        "]},\"finish_reason\":\"tool_calls\"}]}";
    d = check_resp(200, tool, 0);
    CHECK(!d.store);
    CHECK(!strcmp(d.reason, "tool-call"));
    d = check_resp(200,
                   "{\"choices\":[{\"message\":{\"content\":null,\"function_call\":{\"name\":\"f\","
                   "\"arguments\":\"{}\"}},\"finish_reason\":\"function_call\"}]}",
                   0);
    CHECK(!d.store);

    d = check_resp(200,
                   "{\"choices\":[{\"message\":{\"content\":\"Whales are\"},"
                   "\"finish_reason\":\"length\"}]}",
                   0);
    CHECK(!d.store);
    CHECK(!strcmp(d.reason, "truncated"));

    const char *code = "{\"choices\":[{\"message\":{\"content\":\"Here:\\n```c\\nint x;\\n```\"},"
                       "\"finish_reason\":\"stop\"}]}";
    d = check_resp(200, code, 0);
    CHECK(d.store);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    CHECK(!d.semantic);
    CHECK(!strcmp(d.reason, "code-answer"));
    d = check_resp(200,
                   "{\"choices\":[{\"message\":{\"content\":\"Use `x` and ``y``.\"},"
                   "\"finish_reason\":\"stop\"}]}",
                   0);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);

    d = check_resp(200, "not json", 0);
    CHECK(!d.store);
    d = check_resp(200, "", 0);
    CHECK(!d.store);
    d = check_resp(200, "{\"error\":{\"message\":\"boom\"}}", 0);
    CHECK(!d.store);

    /* Streams: the raw SSE text, fences split across chunks, tool deltas. */
    const char *sse =
        "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"``\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{\"content\":\"`py\\nx=1\\n```\"}}]}\n\n"
        "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    d = check_resp(200, sse, 1);
    CHECK(d.store);
    CHECK_EQ_INT(d.action, LLMC_POLICY_EXACT_ONLY);
    const char *sse_ok = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n"
                         "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
                         "data: [DONE]\r\n\r\n";
    d = check_resp(200, sse_ok, 1);
    CHECK(d.store);
    CHECK_EQ_INT(d.action, LLMC_POLICY_CACHE);
    const char *sse_tool = "data: "
                           "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
                           "\"name\":\"f\"}}]}}]}\n\n"
                           "data: [DONE]\n\n";
    d = check_resp(200, sse_tool, 1);
    CHECK(!d.store);
    const char *sse_len =
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}\n\n";
    d = check_resp(200, sse_len, 1);
    CHECK(!d.store);
    d = check_resp(200, "data: {broken\n\n", 1);
    CHECK(!d.store);
    d = check_resp(200, ok, 1); /* assembled JSON also accepted with the flag */
    CHECK(d.store);

    /* Anthropic messages and the Responses API. */
    d = check_resp(200,
                   "{\"type\":\"message\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
                   "\"name\":\"f\",\"input\":{}}],\"stop_reason\":\"tool_use\"}",
                   0);
    CHECK(!d.store);
    d = check_resp(200,
                   "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],"
                   "\"stop_reason\":\"max_tokens\"}",
                   0);
    CHECK(!d.store);
    d = check_resp(200,
                   "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],"
                   "\"stop_reason\":\"end_turn\"}",
                   0);
    CHECK(d.store);
    d = check_resp(200,
                   "{\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"type\":"
                   "\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}",
                   0);
    CHECK(!d.store);
    d = check_resp(200,
                   "{\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"type\":"
                   "\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\"}]}]}",
                   0);
    CHECK(d.store);

    /* Never loosens: a bypass stays unstored; a refusal keeps the first reason. */
    llmc_policy_request r = req_q("what is happening now");
    llmc_policy_decide(pol, &r, &d);
    CHECK_EQ_INT(llmc_policy_check_response(pol, 200, ok, strlen(ok), 0, &d), 0);
    CHECK(!d.store);
    CHECK(!strcmp(d.reason, "time-relative"));
    /* code-answer off / bypass; truncated off. */
    llmc_policy_params p = llmc_policy_default_params();
    llmc_policy_set(&p, "code-answer", "bypass");
    llmc_policy_set(&p, "truncated", "off");
    llmc_policy *pc = llmc_policy_new(&p, NULL);
    d = decide_with(pc, "hello");
    llmc_policy_check_response(pc, 200, code, strlen(code), 0, &d);
    CHECK(!d.store);
    d = decide_with(pc, "hello");
    const char *trunc =
        "{\"choices\":[{\"message\":{\"content\":\"Hi\"},\"finish_reason\":\"length\"}]}";
    llmc_policy_check_response(pc, 200, trunc, strlen(trunc), 0, &d);
    CHECK(d.store);
    llmc_policy_free(pc);
    CHECK_EQ_INT(llmc_policy_check_response(NULL, 200, ok, strlen(ok), 0, &d), LLMC_EINVAL);
    CHECK(!d.store);
}

int main(void)
{
    int err = 0;
    pol = llmc_policy_new(NULL, &err);
    CHECK(pol != NULL);
    if (!pol)
        return UNIT_DONE();
    test_default_cache();
    test_temperature_and_n();
    test_time_relative();
    test_time_relative_ru();
    test_words_cyrillic();
    test_rule_langs();
    test_financial();
    test_code();
    test_personal_tools_endpoint();
    test_cache_control();
    test_combination();
    test_config();
    test_errors_never_fail();
    test_response();
    llmc_policy_free(pol);
    return UNIT_DONE();
}
