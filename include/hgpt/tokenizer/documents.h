// documents.h — reading documents from the user's corpus files (shared by tok_train and tokenize).
//
// *.parquet (or a file that starts with parquet's magic "PAR1"): each non-null value of the string
// column text_column is a document (null rows are skipped and counted in null_rows), streamed
// through Arrow (parquet_text.h). *.jsonl: one JSON object per line, the document is its
// text_column string (blank lines skipped). Any other file: plain text, documents separated by one
// or more blank lines (whole_file: the whole file is one document). Bad input (unreadable file, a
// parquet file Arrow cannot read, a file that is not text — gzip, zstd or zip magic, NUL bytes, or
// over 1% invalid UTF-8 in its first 64 KiB —, invalid JSON line, missing text field) →
// hgpt::UserError "FILE[:LINE]: what", or, when skip_bad, counted in bad_files / bad_lines.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hgpt::tokenizer {

struct DocumentReaderOptions {
  bool whole_file = false;
  bool skip_bad = false;
  std::string text_column = "text";  // parquet's column, JSONL's field
};

class DocumentReader {
 public:
  DocumentReader(std::vector<std::string> files, DocumentReaderOptions options = {});
  ~DocumentReader();
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;
  // Next document; false when all files are read.
  bool next(std::string& doc);
  int64_t bytes_read() const { return bytes_read_; }    // input bytes consumed so far
  int64_t total_bytes() const { return total_bytes_; }  // sum of the files' sizes
  int64_t bad_files() const { return bad_files_; }
  int64_t bad_lines() const { return bad_lines_; }
  int64_t null_rows() const { return null_rows_; }  // parquet rows whose text was null
  // "skipped N unreadable or non-text files and M bad lines[, and K null rows (no text)]", or "" when
  // nothing was skipped.
  std::string skipped_summary() const;

 private:
  bool open_next_file();
  bool next_parquet(std::string& doc);
  bool next_jsonl(std::string& doc);
  bool next_text(std::string& doc);

  std::vector<std::string> files_;
  DocumentReaderOptions options_;
  size_t file_index_ = 0;
  struct OpenFile;
  std::unique_ptr<OpenFile> current_;
  int64_t bytes_read_ = 0, total_bytes_ = 0, bad_files_ = 0, bad_lines_ = 0, null_rows_ = 0;
};

}  // namespace hgpt::tokenizer
