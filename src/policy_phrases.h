/*
 * policy_phrases.h — internal: the policy's phrase lists (the lexicon of
 * time-relative, financial and code-request phrases, and the word classes
 * they use), included once, by policy.c, which indexes them at
 * llmc_policy_new. The phrase syntax ("*", "#", "@class", "!" exceptions)
 * is described in policy.c's header comment. Data only: editing the lists
 * changes no code; tests/unit/test_policy.c holds the sentences each rule
 * must and must not match.
 */
#ifndef POLICY_PHRASES_H
#define POLICY_PHRASES_H

enum { CAT_TIME = 0, CAT_FIN = 1, CAT_CODE = 2, CAT_N = 3 };

typedef struct {
    const char *phrase;
    int cat;
} policy_phrase;

/* Word classes. Each list is sorted for bsearch. */
static const char *const cls_month[] = {
    "apr", "april",    "aug", "august",  "dec", "december", "feb",      "february",
    "jan", "january",  "jul", "july",    "jun", "june",     "march",    "may",
    "nov", "november", "oct", "october", "sep", "sept",     "september"};
static const char *const cls_weekday[] = {"friday",   "monday",  "saturday", "sunday",
                                          "thursday", "tuesday", "wednesday"};
static const char *const cls_lang[] = {
    "assembly",   "bash",   "c",          "clojure",    "cobol",   "cpp",     "csharp", "css",
    "dart",       "elixir", "erlang",     "fortran",    "golang",  "haskell", "html",   "java",
    "javascript", "js",     "julia",      "kotlin",     "latex",   "lua",     "matlab", "nodejs",
    "perl",       "php",    "powershell", "python",     "ruby",    "rust",    "scala",  "sh",
    "solidity",   "sql",    "swift",      "typescript", "verilog", "vhdl",    "zsh"};
static const char *const cls_ccy[] = {
    "aud",     "bitcoin", "brl",    "btc",  "cad",   "chf",   "cny",    "dollar",
    "dollars", "eth",     "eur",    "euro", "euros", "franc", "francs", "gbp",
    "hkd",     "inr",     "jpy",    "krw",  "mxn",   "nok",   "nzd",    "peso",
    "pesos",   "pound",   "pounds", "rmb",  "rub",   "ruble", "rubles", "rupee",
    "rupees",  "sek",     "sgd",    "usd",  "yen",   "yuan"};
static const char *const cls_cverb[] = {
    "build", "code",     "create", "debug",    "fix",     "generate", "give",      "implement",
    "make",  "optimize", "port",   "refactor", "rewrite", "show",     "translate", "write"};
static const char *const cls_cnoun[] = {
    "algorithm", "api",       "class",          "code",    "component", "endpoint",
    "function",  "functions", "implementation", "macro",   "method",    "methods",
    "module",    "one-liner", "oneliner",       "program", "programs",  "query",
    "regex",     "script",    "scripts",        "snippet", "snippets",  "subroutine"};

/* English ("en"). The word classes above are English too. */
static const policy_phrase lexicon[] = {
    /* time- and date-relative */
    {"today", CAT_TIME},
    {"tonight", CAT_TIME},
    {"now", CAT_TIME},
    {"nowadays", CAT_TIME},
    {"currently", CAT_TIME},
    {"current", CAT_TIME},
    {"latest", CAT_TIME},
    {"recent", CAT_TIME},
    {"recently", CAT_TIME},
    {"yesterday", CAT_TIME},
    {"tomorrow", CAT_TIME},
    {"upcoming", CAT_TIME},
    {"ongoing", CAT_TIME},
    {"minutes ago", CAT_TIME},
    {"hours ago", CAT_TIME},
    {"days ago", CAT_TIME},
    {"weeks ago", CAT_TIME},
    {"an hour ago", CAT_TIME},
    {"a day ago", CAT_TIME},
    {"a week ago", CAT_TIME},
    {"a month ago", CAT_TIME},
    {"months ago", CAT_TIME},
    {"weather", CAT_TIME},
    {"forecast", CAT_TIME},
    {"breaking news", CAT_TIME},
    {"news today", CAT_TIME},
    {"news about", CAT_TIME},
    {"news on", CAT_TIME},
    {"in the news", CAT_TIME},
    {"headlines", CAT_TIME},
    {"trending", CAT_TIME},
    {"this week", CAT_TIME},
    {"this month", CAT_TIME},
    {"this year", CAT_TIME},
    {"this weekend", CAT_TIME},
    {"this morning", CAT_TIME},
    {"this afternoon", CAT_TIME},
    {"this evening", CAT_TIME},
    {"this season", CAT_TIME},
    {"this quarter", CAT_TIME},
    {"next week", CAT_TIME},
    {"next month", CAT_TIME},
    {"next year", CAT_TIME},
    {"next weekend", CAT_TIME},
    {"last week", CAT_TIME},
    {"last month", CAT_TIME},
    {"last year", CAT_TIME},
    {"last night", CAT_TIME},
    {"last weekend", CAT_TIME},
    {"past week", CAT_TIME},
    {"past month", CAT_TIME},
    {"past year", CAT_TIME},
    {"past # days", CAT_TIME},
    {"past # hours", CAT_TIME},
    {"last # days", CAT_TIME},
    {"last # hours", CAT_TIME},
    {"this @weekday", CAT_TIME},
    {"next @weekday", CAT_TIME},
    {"last @weekday", CAT_TIME},
    {"on @weekday", CAT_TIME},
    {"coming @weekday", CAT_TIME},
    {"at the moment", CAT_TIME},
    {"these days", CAT_TIME},
    {"so far", CAT_TIME},
    {"as of", CAT_TIME},
    {"up to date", CAT_TIME},
    {"what time is it", CAT_TIME},
    {"what's the time", CAT_TIME},
    {"what is the time", CAT_TIME},
    {"whats the time", CAT_TIME},
    {"what day is it", CAT_TIME},
    {"what date is it", CAT_TIME},
    {"what's the date", CAT_TIME},
    {"what is the date", CAT_TIME},
    {"what year is it", CAT_TIME},
    {"@month #", CAT_TIME},
    {"# @month", CAT_TIME},
    {"# of @month", CAT_TIME},
    {"!electric current", CAT_TIME},
    {"!alternating current", CAT_TIME},
    {"!direct current", CAT_TIME},
    {"!ocean current", CAT_TIME},
    {"!current density", CAT_TIME},
    {"!current flow", CAT_TIME},
    {"!current flows", CAT_TIME},
    {"!current account", CAT_TIME},
    {"!current accounts", CAT_TIME},
    {"!end current", CAT_TIME},
    {"!current transformer", CAT_TIME},
    {"!current source", CAT_TIME},
    /* volatile financial data */
    {"price", CAT_FIN},
    {"prices", CAT_FIN},
    {"pricing", CAT_FIN},
    {"stock", CAT_FIN},
    {"stocks", CAT_FIN},
    {"shares of", CAT_FIN},
    {"share price", CAT_FIN},
    {"stock quote", CAT_FIN},
    {"price quote", CAT_FIN},
    {"exchange rate", CAT_FIN},
    {"conversion rate", CAT_FIN},
    {"interest rate", CAT_FIN},
    {"mortgage rate", CAT_FIN},
    {"inflation rate", CAT_FIN},
    {"market cap", CAT_FIN},
    {"bitcoin", CAT_FIN},
    {"btc", CAT_FIN},
    {"ethereum", CAT_FIN},
    {"crypto", CAT_FIN},
    {"cryptocurrency", CAT_FIN},
    {"cryptocurrencies", CAT_FIN},
    {"dogecoin", CAT_FIN},
    {"solana", CAT_FIN},
    {"nasdaq", CAT_FIN},
    {"nyse", CAT_FIN},
    {"dow jones", CAT_FIN},
    {"s p 500", CAT_FIN},
    {"ftse", CAT_FIN},
    {"nikkei", CAT_FIN},
    {"forex", CAT_FIN},
    {"ticker", CAT_FIN},
    {"trading at", CAT_FIN},
    {"@ccy to @ccy", CAT_FIN},
    {"@ccy in @ccy", CAT_FIN},
    {"@ccy @ccy", CAT_FIN},
    {"!chicken stock", CAT_FIN},
    {"!beef stock", CAT_FIN},
    {"!vegetable stock", CAT_FIN},
    {"!fish stock", CAT_FIN},
    {"!in stock", CAT_FIN},
    {"!out of stock", CAT_FIN},
    {"!stock photo", CAT_FIN},
    {"!stock image", CAT_FIN},
    {"!stock footage", CAT_FIN},
    {"!stock browser", CAT_FIN},
    {"!stock android", CAT_FIN},
    {"!stock rom", CAT_FIN},
    {"!stock firmware", CAT_FIN},
    {"!price elasticity", CAT_FIN},
    {"!price discrimination", CAT_FIN},
    {"!pounds to kg", CAT_FIN},
    {"!pounds to kilograms", CAT_FIN},
    {"!pounds to grams", CAT_FIN},
    {"!pounds in kg", CAT_FIN},
    /* code generation */
    {"@cverb @cnoun", CAT_CODE},
    {"@cverb * @cnoun", CAT_CODE},
    {"@cverb * * @cnoun", CAT_CODE},
    {"@cverb * * * @cnoun", CAT_CODE},
    {"implement", CAT_CODE},
    {"in @lang", CAT_CODE},
    {"using @lang", CAT_CODE},
    {"with @lang", CAT_CODE},
    {"@lang code", CAT_CODE},
    {"@lang script", CAT_CODE},
    {"@lang function", CAT_CODE},
    {"@lang program", CAT_CODE},
    {"@lang snippet", CAT_CODE},
    {"@lang class", CAT_CODE},
    {"@lang module", CAT_CODE},
    {"@lang query", CAT_CODE},
    {"regex", CAT_CODE},
    {"regexp", CAT_CODE},
    {"regular expression", CAT_CODE},
    {"sql", CAT_CODE},
    {"code to", CAT_CODE},
    {"code for", CAT_CODE},
    {"code that", CAT_CODE},
    {"code which", CAT_CODE},
    {"code snippet", CAT_CODE},
    {"source code", CAT_CODE},
    {"shell command", CAT_CODE},
    {"bash command", CAT_CODE},
    {"unit test", CAT_CODE},
};

/* Russian ("ru"): time/date and a few exchange rates. Russian inflects, so
 * a word is either listed in each form it needs or written as a stem with
 * "~" (the stem plus at most three more letters: "сегодняшн~" is
 * сегодняшний, сегодняшняя, сегодняшнего, ...). Stems are chosen so that no
 * other word fits them: "завтра" is a literal, not a stem, because
 * "завтрак" (breakfast) would; "погода" is listed form by form because
 * "погодите" (wait) fits "погод~". Words are lowercase with ё written е
 * (the tokenizer folds both). */
static const policy_phrase lexicon_ru[] = {
    /* time- and date-relative */
    {"сегодня", CAT_TIME},
    {"сегодняшн~", CAT_TIME},
    {"завтра", CAT_TIME},
    {"завтрашн~", CAT_TIME},
    {"послезавтра", CAT_TIME},
    {"вчера", CAT_TIME},
    {"вчерашн~", CAT_TIME},
    {"позавчера", CAT_TIME},
    {"сейчас", CAT_TIME},
    {"текущ~", CAT_TIME},
    {"нынешн~", CAT_TIME},
    {"в настоящее время", CAT_TIME},
    {"на данный момент", CAT_TIME},
    {"в данный момент", CAT_TIME},
    {"на этой неделе", CAT_TIME},
    {"на следующей неделе", CAT_TIME},
    {"на прошлой неделе", CAT_TIME},
    {"в этом месяце", CAT_TIME},
    {"в следующем месяце", CAT_TIME},
    {"в прошлом месяце", CAT_TIME},
    {"в этом году", CAT_TIME},
    {"в следующем году", CAT_TIME},
    {"в прошлом году", CAT_TIME},
    {"на этих выходных", CAT_TIME},
    {"в эти выходные", CAT_TIME},
    {"минут~ назад", CAT_TIME},
    {"час~ назад", CAT_TIME},
    {"дн~ назад", CAT_TIME},
    {"день назад", CAT_TIME},
    {"недел~ назад", CAT_TIME},
    {"месяц~ назад", CAT_TIME},
    {"последн~ новост~", CAT_TIME},
    {"свеж~ новост~", CAT_TIME},
    {"новост~ дня", CAT_TIME},
    {"погода", CAT_TIME},
    {"погоды", CAT_TIME},
    {"погоде", CAT_TIME},
    {"погоду", CAT_TIME},
    {"погодой", CAT_TIME},
    {"прогноз", CAT_TIME},
    {"прогноза", CAT_TIME},
    {"прогнозы", CAT_TIME},
    {"который час", CAT_TIME},
    /* volatile financial data */
    {"курс доллар~", CAT_FIN},
    {"курс евро", CAT_FIN},
    {"курс рубл~", CAT_FIN},
    {"курс юан~", CAT_FIN},
    {"курс валют", CAT_FIN},
    {"курс биткоин~", CAT_FIN},
    {"курс акций", CAT_FIN},
};

/* The lists and their languages (ISO 639-1). Everything that reports which
 * language a rule serves (/stats) reads this table, so a new list is
 * reported the moment it is added here. */
typedef struct {
    const policy_phrase *phrases;
    size_t n;
    const char *lang;
} policy_phrase_list;

static const policy_phrase_list policy_lists[] = {
    {lexicon, sizeof lexicon / sizeof lexicon[0], "en"},
    {lexicon_ru, sizeof lexicon_ru / sizeof lexicon_ru[0], "ru"},
};

/* The name each category has outside (/stats "languages.policy"). */
static const char *const policy_cat_name[CAT_N] = {"time", "finance", "code"};

#endif
