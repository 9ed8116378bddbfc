// documents.cpp — reading documents from the user's corpus files for tok_train and tokenize
// (parquet's text column, JSONL's "text" field, or plain text split on blank lines), with
// file:line errors.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "hgpt/errors.h"
#include "hgpt/strings.h"
#include "hgpt/tokenizer/documents.h"
#include "hgpt/tokenizer/parquet_text.h"

namespace hgpt::tokenizer {
namespace {

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

// Bytes of `text` in malformed UTF-8 sequences (a sequence cut by the end of `text` is not counted:
// `text` may be the head of a file).
int64_t invalid_utf8_bytes(std::string_view text) {
  int64_t bad = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t length = lead < 0x80           ? 1
                          : (lead >> 5) == 0x6  ? 2
                          : (lead >> 4) == 0xE  ? 3
                          : (lead >> 3) == 0x1E ? 4
                                                : 0;
    if (length == 0) {
      ++bad, ++i;
      continue;
    }
    if (i + length > text.size()) break;
    size_t k = 1;
    while (k < length && (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80) ++k;
    if (k < length) bad += static_cast<int64_t>(k);
    i += k;
  }
  return bad;
}

// Why the head of a file says it is not text, or "" when it may be: a known binary format's magic,
// a NUL byte, or more than 1% of its bytes outside valid UTF-8.
std::string binary_reason(std::string_view head) {
  auto starts = [&](std::string_view magic) { return head.substr(0, magic.size()) == magic; };
  if (starts("\x1f\x8b")) return "a gzip file";
  if (starts("\x28\xb5\x2f\xfd")) return "a zstd file";
  if (starts("PK\x03\x04")) return "a zip file";
  if (head.find('\0') != std::string_view::npos) return "it holds NUL bytes";
  if (invalid_utf8_bytes(head) * 100 > static_cast<int64_t>(head.size())) return "it is not UTF-8 text";
  return "";
}

// The first 64 KiB of `in`, which is left at its start again.
std::string read_head(std::ifstream& in) {
  std::string head(64 * 1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  in.clear();
  in.seekg(0);
  return head;
}

}  // namespace

struct DocumentReader::OpenFile {
  std::string path;
  std::ifstream in;
  int64_t line_no = 0;
  bool jsonl = false;
  std::unique_ptr<ParquetTextReader> parquet;  // set for a parquet file
  int64_t size = 0, bytes_counted = 0;         // parquet: file size, and how much of it bytes_read_ holds
  int64_t nulls_counted = 0;                   // parquet: its null rows already in null_rows_
  bool done = false;                           // whole-file mode: the single document was returned
};

DocumentReader::DocumentReader(std::vector<std::string> files, DocumentReaderOptions options)
    : files_(std::move(files)), options_(options) {
  if (options_.text_column.empty())
    throw UserError(
        "--text_column is empty; name the parquet column or JSONL field that holds the text "
        "(the default is text)");
  for (const auto& f : files_) {
    struct stat st {};
    if (::stat(f.c_str(), &st) == 0 && S_ISREG(st.st_mode)) total_bytes_ += static_cast<int64_t>(st.st_size);
  }
}

DocumentReader::~DocumentReader() = default;

bool DocumentReader::open_next_file() {
  current_.reset();
  while (file_index_ < files_.size()) {
    const std::string& path = files_[file_index_++];
    struct stat st {};
    std::string why;
    if (::stat(path.c_str(), &st) != 0)
      why = std::strerror(errno);
    else if (!S_ISREG(st.st_mode))
      why = "not a regular file";
    auto f = std::make_unique<OpenFile>();
    if (why.empty()) {
      f->in.open(path, std::ios::binary);
      if (!f->in) why = std::strerror(errno);
    }
    std::string head;
    if (why.empty()) head = read_head(f->in);
    const bool parquet = ends_with(path, ".parquet") || head.substr(0, 4) == "PAR1";
    if (why.empty() && parquet) {
      f->in.close();
      try {
        f->parquet = std::make_unique<ParquetTextReader>(path, options_.text_column);
        f->size = static_cast<int64_t>(st.st_size);
      } catch (const UserError& e) {
        if (!options_.skip_bad) throw;
        why = e.what();
      }
    } else if (why.empty()) {
      const std::string binary = binary_reason(head);
      if (!binary.empty()) {
        why = "not text (" + binary + "); tokenize and tok_train read parquet files (by their --text_column), " +
              "UTF-8 text and JSONL, or pass --skip_bad to skip such files";
      }
    }
    if (!why.empty()) {
      if (!options_.skip_bad) throw UserError(path + ": cannot read: " + why);
      ++bad_files_;
      continue;
    }
    f->path = path;
    f->jsonl = ends_with(path, ".jsonl");
    current_ = std::move(f);
    return true;
  }
  return false;
}

bool DocumentReader::next(std::string& doc) {
  while (true) {
    if (!current_ && !open_next_file()) return false;
    if (current_->parquet ? next_parquet(doc) : current_->jsonl ? next_jsonl(doc) : next_text(doc)) return true;
    current_.reset();
  }
}

std::string DocumentReader::skipped_summary() const {
  if (bad_files_ == 0 && bad_lines_ == 0 && null_rows_ == 0) return "";
  std::string text;
  if (bad_files_ > 0 || bad_lines_ > 0)
    text = "skipped " + std::to_string(bad_files_) + " unreadable or non-text files and " + std::to_string(bad_lines_) +
           " bad lines";
  if (null_rows_ > 0)
    text += (text.empty() ? "skipped " : ", and ") + std::to_string(null_rows_) + " null rows (no text)";
  return text;
}

bool DocumentReader::next_parquet(std::string& doc) {
  OpenFile& f = *current_;
  bool more = false;
  try {
    more = f.parquet->next(doc);
  } catch (const UserError&) {  // a damaged page: the rest of this file is lost
    if (!options_.skip_bad) throw;
    ++bad_files_;
  }
  null_rows_ += f.parquet->nulls();
  null_rows_ -= f.nulls_counted;
  f.nulls_counted = f.parquet->nulls();
  // Progress in bytes: the file's share of rows read so far.
  const int64_t rows = std::max<int64_t>(1, f.parquet->rows());
  const int64_t counted = more ? f.size * f.parquet->rows_read() / rows : f.size;
  bytes_read_ += counted - f.bytes_counted;
  f.bytes_counted = counted;
  return more;
}

bool DocumentReader::next_jsonl(std::string& doc) {
  OpenFile& f = *current_;
  std::string line;
  while (std::getline(f.in, line)) {
    ++f.line_no;
    bytes_read_ += static_cast<int64_t>(line.size()) + 1;
    if (is_blank(line)) continue;
    std::string why;
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object())
        why = "expected a JSON object with a \"" + options_.text_column + "\" field";
      else if (!j.contains(options_.text_column) || !j[options_.text_column].is_string())
        why = "no \"" + options_.text_column + "\" string field (name the field with --text_column)";
      else {
        doc = j[options_.text_column].get<std::string>();
        return true;
      }
    } catch (const nlohmann::json::exception& e) {
      why = std::string("invalid JSON: ") + e.what();
    }
    if (!options_.skip_bad) throw UserError(f.path + ":" + std::to_string(f.line_no) + ": " + why);
    ++bad_lines_;
  }
  return false;
}

bool DocumentReader::next_text(std::string& doc) {
  OpenFile& f = *current_;
  if (options_.whole_file) {
    if (f.done) return false;
    f.done = true;
    std::stringstream ss;
    ss << f.in.rdbuf();
    doc = ss.str();
    bytes_read_ += static_cast<int64_t>(doc.size());
    return !doc.empty();
  }
  // A document is a run of lines up to the next blank line; the blank lines between documents
  // are separators and belong to neither.
  doc.clear();
  std::string line;
  while (std::getline(f.in, line)) {
    ++f.line_no;
    const bool had_newline = !f.in.eof();
    bytes_read_ += static_cast<int64_t>(line.size()) + (had_newline ? 1 : 0);
    if (is_blank(line)) {
      if (!doc.empty()) return true;
      continue;
    }
    if (!doc.empty()) doc += '\n';
    doc += line;
  }
  return !doc.empty();
}

}  // namespace hgpt::tokenizer
