// files.h — the few file-system operations the project needs, on POSIX calls.
//
// Not std::filesystem: the torch wheel's libtorch exports its own copies of several
// std::filesystem functions, which interpose on the standard library's in any binary linked with
// it (remove_all was seen to crash). Failures throw hgpt::UserError naming the path.
#pragma once

#include <string>
#include <vector>

namespace hgpt {

void make_dirs(const std::string& dir);  // mkdir -p
bool is_directory(const std::string& path);
bool path_exists(const std::string& path);                  // anything there (following links)
std::vector<std::string> list_dir(const std::string& dir);  // entry names, sorted, without . and ..
std::string path_join(const std::string& dir, const std::string& name);
// The folder a tool writes into, checked before any work (`flag` names it in the messages, e.g.
// "--out"; `why_a_folder` says what goes in it): not a file, not a symbolic link to nothing, and
// creatable — its nearest existing parent is a writable folder. Returns the path to write to:
// `path` without trailing slashes, or the folder a link there points to (so that a rename onto it
// replaces the folder, not the link). UserError naming the problem and the fix otherwise.
std::string checked_output_folder(const std::string& flag, const std::string& path, const std::string& why_a_folder);
// The whole file; UserError "<what> <path> cannot be read: <reason>" when it cannot be opened.
std::string read_file(const std::string& path, const char* what = "file");
// Opens `path` (open(2) `flags`, with O_CLOEXEC | O_NOFOLLOW, mode 0644) as a file the program
// owns: a symbolic link there, a hard link (a file with other names) or anything but a regular
// file or a character device (/dev/null, /dev/full) is refused, so that writing it never changes
// another file. UserError "cannot open <what>
// <path>: <reason>; <fix>" (or "<what> <path> is ...") otherwise; the caller closes the descriptor.
int open_own_file(const std::string& path, int flags, const std::string& what);
// Writes `bytes` to a fresh path + ".tmp", fsyncs it, renames it over `path` and fsyncs the folder:
// readers never see half a file, and after a crash or power loss `path` holds the old or new bytes.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace hgpt
