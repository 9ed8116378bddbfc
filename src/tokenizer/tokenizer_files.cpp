// tokenizer_files.cpp — the tokenizer's files: tokenizer.tiktoken (base64 bytes + rank per line) and
// tokenizer.json (pattern, special tokens, vocab size). Reading checks everything and reports
// "FILE:LINE: what" as hgpt::UserError; writing is atomic (temporary name + rename).
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "hgpt/config.h"
#include "hgpt/errors.h"
#include "hgpt/files.h"
#include "hgpt/strings.h"
#include "src/tokenizer/tokenizer_impl.h"

namespace hgpt::tokenizer {
namespace {

constexpr char kBase64Chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kBase64Chars[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out += kBase64Chars[(v >> 18) & 63];
    out += kBase64Chars[(v >> 12) & 63];
    out += i + 1 < in.size() ? kBase64Chars[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Strict decoding (length a multiple of 4, padding only at the end); false on any malformed input.
bool base64_decode(std::string_view in, std::string& out) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kBase64Chars[i])] = static_cast<int8_t>(i);
    return t;
  }();
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=') {
        if (i + 4 != in.size() || k < 2) return false;
        v[k] = 0;
        ++pad;
      } else {
        if (pad > 0) return false;  // data after padding
        v[k] = table[static_cast<uint8_t>(c)];
        if (v[k] < 0) return false;
      }
    }
    const uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((w >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return true;
}

int line_of_offset(const std::string& text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + offset, '\n'));
}

// Line where "key" first appears (best effort, for messages about a key's value); 1 if absent.
int line_of_key(const std::string& text, const std::string& key) {
  const size_t at = text.find("\"" + key + "\"");
  return at == std::string::npos ? 1 : line_of_offset(text, at);
}

// Parses a tiktoken ranks file into bytes-by-rank.
void parse_tiktoken(const std::string& path, std::vector<std::string>& id_bytes, std::vector<uint8_t>& is_rank) {
  const std::string text = read_file(path, "ranks file");
  std::unordered_map<std::string, int64_t> seen_bytes;  // bytes → line, to report duplicates
  std::unordered_map<int64_t, int> seen_rank;           // rank → line
  size_t pos = 0;
  int line_no = 0;
  std::string bytes;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
      throw UserError(where + "expected '<base64 bytes> <rank>'");
    const std::string_view b64 = line.substr(0, sp), rank_text = line.substr(sp + 1);
    if (!base64_decode(b64, bytes) || bytes.empty())
      throw UserError(where + "invalid base64 token '" + std::string(b64) + "'");
    if (rank_text.empty() || rank_text.size() > 10 ||
        rank_text.find_first_not_of("0123456789") != std::string_view::npos)
      throw UserError(where + "rank '" + std::string(rank_text) + "' is not a non-negative integer");
    const int64_t rank = std::stoll(std::string(rank_text));
    if (rank >= kMaxVocabSize)  // the id tables are dense: a huge rank would allocate for every id below it
      throw UserError(where + "rank " + std::to_string(rank) + " is too large (ids must be below " +
                      std::to_string(kMaxVocabSize) + ")");
    if (auto it = seen_rank.find(rank); it != seen_rank.end())
      throw UserError(where + "rank " + std::to_string(rank) + " already given on line " + std::to_string(it->second));
    if (auto it = seen_bytes.find(bytes); it != seen_bytes.end())
      throw UserError(where + "token '" + std::string(b64) + "' already given on line " + std::to_string(it->second));
    seen_rank.emplace(rank, line_no);
    seen_bytes.emplace(bytes, line_no);
    if (static_cast<size_t>(rank) >= id_bytes.size()) {
      id_bytes.resize(rank + 1);
      is_rank.resize(rank + 1, 0);
    }
    id_bytes[rank] = bytes;
    is_rank[rank] = 1;
  }
  if (seen_rank.empty()) throw UserError(path + ": no ranks in the file");
}

}  // namespace

Tokenizer Tokenizer::from_tiktoken(const std::string& ranks_path, const std::string& pattern,
                                   const std::map<std::string, uint32_t>& special_tokens) {
  std::vector<std::string> id_bytes;
  std::vector<uint8_t> is_rank;
  parse_tiktoken(ranks_path, id_bytes, is_rank);
  return Tokenizer(detail::make_impl(std::move(id_bytes), std::move(is_rank), special_tokens, pattern, ranks_path));
}

std::string tokenizer_fingerprint(const std::string& dir) {
  return fnv1a64_hex(read_file(dir + "/" + kTiktokenFile, "ranks file") + '\0' +
                     read_file(dir + "/" + kTokenizerJsonFile, "tokenizer sidecar"));
}

Tokenizer Tokenizer::load(const std::string& dir) {
  const std::string json_path = dir + "/" + kTokenizerJsonFile;
  const std::string what_it_is = std::string(" (a tokenizer is a folder holding ") + kTokenizerJsonFile + " and " +
                                 kTiktokenFile + ", as tok_train --out DIR writes it)";
  if (!path_exists(dir))
    throw UserError("tokenizer folder '" + dir + "' does not exist" + what_it_is +
                    "; give an existing one, or train one with tok_train");
  if (!is_directory(dir)) throw UserError("tokenizer '" + dir + "' is a file, not a folder" + what_it_is);
  if (!path_exists(json_path))
    throw UserError("tokenizer folder '" + dir + "' holds no " + kTokenizerJsonFile + what_it_is);
  const std::string text = read_file(json_path, "tokenizer sidecar");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(json_path + ":" + std::to_string(line_of_offset(text, e.byte > 0 ? e.byte - 1 : 0)) +
                    ": invalid JSON: " + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number beyond double range
    throw UserError(json_path + ": invalid JSON: " + e.what());
  }
  auto fail = [&](const std::string& key, const std::string& what) -> UserError {
    return UserError(json_path + ":" + std::to_string(line_of_key(text, key)) + ": " + what);
  };
  if (!j.is_object()) throw UserError(json_path + ":1: expected a JSON object");
  for (const auto& item : j.items())
    if (item.key() != "pattern" && item.key() != "special_tokens" && item.key() != "vocab_size")
      throw fail(item.key(), "unknown key \"" + item.key() + "\" (allowed: pattern, special_tokens, vocab_size)");
  if (!j.contains("pattern") || !j["pattern"].is_string())
    throw fail("pattern", "\"pattern\" must be a string (the split regex)");
  std::map<std::string, uint32_t> specials;
  if (j.contains("special_tokens")) {
    const auto& s = j["special_tokens"];
    if (!s.is_object()) throw fail("special_tokens", "\"special_tokens\" must be an object name → id");
    for (const auto& item : s.items()) {
      const auto& id = item.value();
      const std::string name = "special token \"" + item.key() + "\"";
      if (item.key().empty()) throw fail("special_tokens", "a special token has an empty name");
      if (!id.is_number_integer()) throw fail(item.key(), name + " needs an integer id, got " + id.dump());
      if (id.is_number_unsigned() ? id.get<uint64_t>() >= static_cast<uint64_t>(kMaxVocabSize) : id.get<int64_t>() < 0)
        throw fail(item.key(),
                   name + " has id " + id.dump() + "; ids must be in 0.." + std::to_string(kMaxVocabSize - 1));
      specials[item.key()] = id.get<uint32_t>();
    }
  }
  // The ranks, then the special tokens against them: errors about the special tokens name this file.
  const std::string ranks_path = dir + "/" + kTiktokenFile;
  std::vector<std::string> id_bytes;
  std::vector<uint8_t> is_rank;
  parse_tiktoken(ranks_path, id_bytes, is_rank);
  std::map<uint32_t, std::string> special_by_id;
  for (const auto& [name, id] : specials) {
    if (id < is_rank.size() && is_rank[id])
      throw fail(name, "special token \"" + name + "\" has id " + std::to_string(id) +
                           ", already a mergeable rank in " + ranks_path);
    if (const auto [it, fresh] = special_by_id.emplace(id, name); !fresh)
      throw fail(name, "special tokens \"" + it->second + "\" and \"" + name + "\" share id " + std::to_string(id));
  }
  const std::string pattern = j["pattern"].get<std::string>();
  Tokenizer tok = [&] {
    try {
      return Tokenizer(detail::make_impl(std::move(id_bytes), std::move(is_rank), specials, pattern, ranks_path));
    } catch (const UserError& e) {
      const std::string msg = e.what();
      if (starts_with(msg, "split pattern")) throw fail("pattern", msg);  // name the sidecar for pattern errors
      throw;
    }
  }();
  if (j.contains("vocab_size")) {
    const auto& v = j["vocab_size"];
    if (!v.is_number_unsigned())
      throw fail("vocab_size", "\"vocab_size\" must be a non-negative integer, got " + v.dump());
    if (v.get<uint64_t>() != static_cast<uint64_t>(tok.vocab_size()))
      throw fail("vocab_size", "\"vocab_size\" is " + v.dump() + " but the ranks and special tokens give " +
                                   std::to_string(tok.vocab_size()));
  }
  return tok;
}

void Tokenizer::save(const std::string& dir) const {
  make_dirs(dir);
  std::string ranks;
  for (int64_t id = 0; id < impl_->num_ranks; ++id) {
    if (!impl_->is_rank[id]) continue;
    ranks += base64_encode(impl_->id_bytes[id]);
    ranks += ' ';
    ranks += std::to_string(id);
    ranks += '\n';
  }
  nlohmann::ordered_json j;
  j["pattern"] = impl_->pattern;
  j["special_tokens"] = nlohmann::ordered_json::object();
  // Specials in id order, so the file reads in the order the ids were assigned.
  std::vector<std::pair<uint32_t, std::string>> by_id;
  for (const auto& [name, id] : impl_->specials) by_id.emplace_back(id, name);
  std::sort(by_id.begin(), by_id.end());
  for (const auto& [id, name] : by_id) j["special_tokens"][name] = id;
  j["vocab_size"] = impl_->vocab_size;
  write_file_atomic(dir + "/" + kTiktokenFile, ranks);
  write_file_atomic(dir + "/" + kTokenizerJsonFile, j.dump(2) + "\n");
}

}  // namespace hgpt::tokenizer
