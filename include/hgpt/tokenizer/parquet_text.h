// parquet_text.h — the strings of one column of a parquet file, streamed a batch of rows at a time
// through Apache Arrow's parquet reader (the C++ library the pyarrow wheel ships; scripts/setup.sh
// installs it). nanochat's pretraining shards are parquet files with one `text` column.
//
// Only this interface is seen by the rest of the project: Arrow's headers need C++20 and stay
// inside src/tokenizer/parquet_text.cpp. A build without Arrow keeps the interface; opening a file
// then throws a UserError that says how to get parquet support.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace hgpt::tokenizer {

// Whether this build reads parquet (Arrow was found when it was configured).
bool parquet_supported();

class ParquetTextReader {
 public:
  // Opens `path` and finds the string column `column`. A file Arrow cannot read, a missing column
  // or a column that is not strings → UserError "PATH: ...".
  ParquetTextReader(const std::string& path, const std::string& column);
  ~ParquetTextReader();
  ParquetTextReader(const ParquetTextReader&) = delete;
  ParquetTextReader& operator=(const ParquetTextReader&) = delete;

  // The next non-null value of the column; false after the last row. Null rows are skipped and
  // counted. A damaged page → UserError "PATH: row group G of N is damaged (...)".
  bool next(std::string& text);
  int64_t rows() const;       // rows in the file
  int64_t rows_read() const;  // rows returned or skipped so far
  int64_t nulls() const;      // null rows skipped so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hgpt::tokenizer
