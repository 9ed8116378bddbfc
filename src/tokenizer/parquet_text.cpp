// parquet_text.cpp — one string column of a parquet file, streamed through Apache Arrow's reader.
//
// Memory stays bounded whatever the file's size: the reader decodes kBatchRows rows at a time and
// reads column pages as it needs them (buffered stream, no pre-buffering of whole column chunks),
// and only the one column we were asked for is read. This file alone includes Arrow (whose headers
// need C++20: CMakeLists.txt compiles it apart from the C++17 library); without Arrow it compiles
// to the same interface that explains how to get parquet support.
#include "hgpt/tokenizer/parquet_text.h"

#include "hgpt/errors.h"

#ifdef HGPT_WITH_PARQUET
#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <parquet/arrow/reader.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>
#include <parquet/properties.h>
#include <parquet/schema.h>

#include <algorithm>
#include <string_view>
#endif

namespace hgpt::tokenizer {

#ifdef HGPT_WITH_PARQUET

namespace {

// Rows decoded at once: nanochat's shards hold documents of a few KB, so a batch is a few MB.
constexpr int64_t kBatchRows = 1024;

// Arrow's messages on one line (some carry the context of nested calls on further lines).
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// What to do about a file Arrow cannot read: the same advice for a damaged footer as for a damaged page.
const char* const kDamagedFix = "; fetch the file again, or pass --skip_bad to skip damaged files";

void check(const arrow::Status& status, const std::string& where) {
  if (!status.ok()) throw UserError(where + ": " + one_line(status.message()) + kDamagedFix);
}

}  // namespace

bool parquet_supported() { return true; }

struct ParquetTextReader::Impl {
  std::string path;
  std::unique_ptr<parquet::arrow::FileReader> file;
  int leaf = 0;                                        // the column among the file's leaf columns
  int next_row_group = 0;                              // the row group `batches` reads is the one before
  std::unique_ptr<arrow::RecordBatchReader> batches;   // of one row group
  std::shared_ptr<arrow::Array> column;                // the column of the current batch
  std::shared_ptr<arrow::Array> values;                // its strings: the column, or its dictionary
  const arrow::DictionaryArray* dictionary = nullptr;  // the column when it is dictionary-encoded
  int64_t next_in_batch = 0, rows = 0, rows_read = 0, nulls = 0;

  // Takes the next batch's column: a dictionary-encoded one (pandas' categoricals, or a file whose
  // stored Arrow schema says so) is read through its indices into its dictionary of strings.
  void take(std::shared_ptr<arrow::Array> batch_column) {
    column = std::move(batch_column);
    dictionary = nullptr;
    values = column;
    if (column->type_id() == arrow::Type::DICTIONARY) {
      dictionary = static_cast<const arrow::DictionaryArray*>(column.get());
      values = dictionary->dictionary();
    }
    next_in_batch = 0;
  }

  // The text of row `i` of the current batch (not null).
  std::string_view text(int64_t i) const { return view(dictionary ? dictionary->GetValueIndex(i) : i); }

  // The value at `i` of a string array of any of Arrow's three string layouts.
  std::string_view view(int64_t i) const {
    switch (values->type_id()) {
      case arrow::Type::STRING:
        return static_cast<const arrow::StringArray&>(*values).GetView(i);
      case arrow::Type::LARGE_STRING:
        return static_cast<const arrow::LargeStringArray&>(*values).GetView(i);
      default:
        return static_cast<const arrow::StringViewArray&>(*values).GetView(i);
    }
  }
};

ParquetTextReader::ParquetTextReader(const std::string& path, const std::string& column)
    : impl_(std::make_unique<Impl>()) {
  Impl& r = *impl_;
  r.path = path;
  const std::string where = path + ": cannot read as parquet";
  try {
    parquet::ReaderProperties properties = parquet::default_reader_properties();
    properties.enable_buffered_stream();              // pages as they are needed, not whole column chunks
    properties.set_page_checksum_verification(true);  // where the writer stored page CRCs
    parquet::ArrowReaderProperties arrow_properties;
    arrow_properties.set_batch_size(kBatchRows);
    arrow_properties.set_pre_buffer(false);
    parquet::arrow::FileReaderBuilder builder;
    check(builder.OpenFile(path, /*memory_map=*/false, properties), where);
    builder.properties(arrow_properties);
    auto built = builder.Build();
    check(built.status(), where);
    r.file = std::move(built).ValueUnsafe();

    std::shared_ptr<arrow::Schema> schema;
    check(r.file->GetSchema(&schema), where);
    const std::vector<int> fields = schema->GetAllFieldIndices(column);
    if (fields.size() > 1)
      throw UserError(path + ": " + std::to_string(fields.size()) + " columns are named '" + column +
                      "', so which holds the text is unclear; rename one where the file is written, or name "
                      "another column with --text_column");
    const int field = fields.empty() ? -1 : fields[0];
    if (field < 0) {
      std::string names;
      for (const auto& f : schema->fields()) names += (names.empty() ? "" : ", ") + f->name();
      throw UserError(path + ": no column '" + column + "' (its columns: " + (names.empty() ? "none" : names) +
                      "); name the text column with --text_column");
    }
    auto stored = schema->field(field)->type();
    if (stored->id() == arrow::Type::DICTIONARY)
      stored = static_cast<const arrow::DictionaryType&>(*stored).value_type();
    const auto type = stored->id();
    if (type != arrow::Type::STRING && type != arrow::Type::LARGE_STRING && type != arrow::Type::STRING_VIEW)
      throw UserError(path + ": column '" + column + "' holds " + schema->field(field)->type()->ToString() +
                      ", not strings; name the text column with --text_column");
    // The record batch reader wants the column's index among the file's leaf columns.
    r.leaf = r.file->parquet_reader()->metadata()->schema()->ColumnIndex(column);
    if (r.leaf < 0) throw UserError(path + ": column '" + column + "' is not a top-level column");
    r.rows = r.file->parquet_reader()->metadata()->num_rows();
  } catch (const UserError&) {
    throw;
  } catch (const std::exception& e) {  // parquet::ParquetException from a damaged footer
    throw UserError(where + ": " + one_line(e.what()) + kDamagedFix);
  }
}

ParquetTextReader::~ParquetTextReader() = default;

bool ParquetTextReader::next(std::string& text) {
  Impl& r = *impl_;
  while (true) {
    while (r.column && r.next_in_batch < r.column->length()) {
      const int64_t i = r.next_in_batch++;
      ++r.rows_read;
      if (r.column->IsNull(i) || (r.dictionary && r.values->IsNull(r.dictionary->GetValueIndex(i)))) {
        ++r.nulls;
        continue;
      }
      text.assign(r.text(i));
      return true;
    }
    // The next batch of this row group, or the first of the next row group (one at a time, so that
    // a damaged page is reported by its row group).
    std::shared_ptr<arrow::RecordBatch> batch;
    std::string why;
    try {
      while (!batch && (r.batches || r.next_row_group < r.file->num_row_groups())) {
        if (!r.batches) {
          auto opened = r.file->GetRecordBatchReader({r.next_row_group++}, {r.leaf});
          if (!opened.ok()) {
            why = opened.status().message();
            break;
          }
          r.batches = std::move(opened).ValueUnsafe();
        }
        const arrow::Status status = r.batches->ReadNext(&batch);
        if (!status.ok()) {
          why = status.message();
          break;
        }
        if (!batch) r.batches.reset();
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (!why.empty())
      throw UserError(r.path + ": row group " + std::to_string(r.next_row_group - 1) + " of " +
                      std::to_string(r.file->num_row_groups()) + " is damaged (" + one_line(why) + ")" + kDamagedFix);
    if (!batch) return false;
    r.take(batch->column(0));
  }
}

int64_t ParquetTextReader::rows() const { return impl_->rows; }
int64_t ParquetTextReader::rows_read() const { return impl_->rows_read; }
int64_t ParquetTextReader::nulls() const { return impl_->nulls; }

#else  // built without Arrow

bool parquet_supported() { return false; }

struct ParquetTextReader::Impl {};

ParquetTextReader::ParquetTextReader(const std::string& path, const std::string&) {
  throw UserError(path +
                  ": this build reads no parquet (Apache Arrow's C++ library was not found when it was "
                  "configured): run scripts/setup.sh, which installs the pinned pyarrow wheel into .venv and "
                  "builds again, or export the text column to JSONL");
}
ParquetTextReader::~ParquetTextReader() = default;
bool ParquetTextReader::next(std::string&) { return false; }
int64_t ParquetTextReader::rows() const { return 0; }
int64_t ParquetTextReader::rows_read() const { return 0; }
int64_t ParquetTextReader::nulls() const { return 0; }

#endif

}  // namespace hgpt::tokenizer
