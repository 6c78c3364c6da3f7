// Text measurements IFEval's verifiers rely on (instructions_util.py upstream, which uses nltk
// and langdetect; these are optiq's own versions of the same rules, see each function).
#pragma once

#include <string>
#include <vector>

namespace optiq::eval::ifeval {

// Words as nltk's RegexpTokenizer(r"\w+") finds them (Unicode \w).
int count_words(const std::string& text);

// Words roughly as nltk's Treebank word tokenizer cuts them: at whitespace, around the
// punctuation it always separates (, ; : ? ! " ( ) [ ] { } and "..."), and before the clitics
// 's 're 've 'll 'd 'm n't; periods, hyphens and slashes inside a word stay ("U.S.", "WELL-KNOWN").
std::vector<std::string> word_tokens(const std::string& text);

// Sentences by a rule-based splitter (upstream counts them with nltk's trained punkt model, whose
// data optiq does not have; this follows the rules of upstream's split_into_sentences helper
// instead, so counts can differ on unusual text): a sentence ends at each "?" and "!", at a run of two
// or more dots, and at a single "." except after a title (Mr, Mrs, Ms, Dr, St, Prof, Capt, Cpt, Lt,
// Mt), a company suffix (Inc, Ltd, Jr, Sr, Co), a single letter (initials, "e.g."), between
// digits, or before a web domain (com, net, org, io, gov, edu, me). Pieces are trimmed; an
// empty last piece is dropped.
std::vector<std::string> split_sentences(const std::string& text);

// Python's str.isupper() / str.islower(): some cased character, and none of the other case.
bool is_upper(const std::string& text);
bool is_lower(const std::string& text);

// Python's str.lower() for ASCII letters; other bytes unchanged.
std::string ascii_lower(std::string text);

// An ISO 639-1 code for the text's language, standing in for langdetect.detect: by the script
// of most letters (Arabic script: "fa" when Persian letters پ چ ژ گ or ی/ک are present, else
// "ar"; Devanagari: "mr" when Marathi function words outnumber Hindi ones, else "hi"; Kannada
// "kn", Gurmukhi "pa", Bengali "bn", Tamil "ta", Telugu "te", Gujarati "gu", Thai "th",
// Cyrillic "ru", Greek "el", Hebrew "he", Hangul "ko", kana "ja", Han "zh"); Latin text is "vi"
// when Vietnamese-only letters are frequent, otherwise "en" when English function words are,
// otherwise "und". Only these are recognized (documented in the README as an approximation).
std::string detect_language(const std::string& text);

}  // namespace optiq::eval::ifeval
