#!/usr/bin/env python3
"""write_parquet_cases.py DIR — the parquet files of tests/tokenizer/test_parquet.cpp, written by
pyarrow (the writer nanochat's shards come from), each beside the JSONL of the same documents.

  docs.parquet     an int64 `id` column before `text`; row groups of 7 rows; nulls, an empty
                   string, non-ASCII text; docs.jsonl holds its non-null texts in order
  dict.parquet     docs.parquet's texts as a dictionary-encoded column (as pandas' categoricals write)
  twice.parquet    two columns, both named `text`
  body.parquet     the texts in a column named `body` (and body.jsonl with a "body" field)
  empty.parquet    a valid file with a `text` column and no rows
  nulls.parquet    a `text` column of 5 rows, every one null
  zero.parquet     0 bytes
  ints.parquet     `text` is an int64 column
  truncated.parquet  docs.parquet cut in half (no footer)
  damaged.parquet  docs.parquet with the header of its second row group's first page overwritten
Prints one JSON line: the number of rows, of nulls, of documents and of row groups in docs.parquet,
and the documents of its first row group (damaged.parquet's readable part).
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
path = lambda name: os.path.join(out, name)

texts = []
for i in range(60):
    words = " ".join(f"word{(i * 7 + k) % 23}" for k in range(i % 17 + 1))
    texts.append(f"Document {i}: {words}.\nSecond line of {i}, ünïcode 日本語 😀")
for i in (3, 4, 31):
    texts[i] = None
texts[10] = ""
documents = [t for t in texts if t is not None]


def write_jsonl(name, field, docs):
    with open(path(name), "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({field: d}, ensure_ascii=False) + "\n")


pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), path("docs.parquet"), row_group_size=7)
write_jsonl("docs.jsonl", "text", documents)
pq.write_table(pa.table({"text": pa.array(texts).dictionary_encode()}), path("dict.parquet"), row_group_size=7)
pq.write_table(pa.Table.from_arrays([pa.array(texts), pa.array(texts)], names=["text", "text"]), path("twice.parquet"))
pq.write_table(pa.table({"body": texts}), path("body.parquet"), row_group_size=16, compression="zstd")
write_jsonl("body.jsonl", "body", documents)
pq.write_table(pa.table({"text": pa.array([], pa.string())}), path("empty.parquet"))
pq.write_table(pa.table({"text": pa.array([None] * 5, pa.string())}), path("nulls.parquet"))
open(path("zero.parquet"), "wb").close()
pq.write_table(pa.table({"text": list(range(5))}), path("ints.parquet"))

data = open(path("docs.parquet"), "rb").read()
open(path("truncated.parquet"), "wb").write(data[: len(data) // 2])
meta = pq.ParquetFile(path("docs.parquet")).metadata
column = meta.row_group(1).column(1)  # `text` of the second row group
page = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
damaged = bytearray(data)
damaged[page : page + 16] = b"\xff" * 16
open(path("damaged.parquet"), "wb").write(bytes(damaged))

first_group = texts[: meta.row_group(0).num_rows]
print(json.dumps({"rows": len(texts), "nulls": len(texts) - len(documents), "documents": len(documents),
                  "row_groups": meta.num_row_groups,
                  "first_row_group_documents": sum(t is not None for t in first_group)}))
