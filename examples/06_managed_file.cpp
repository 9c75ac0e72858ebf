// A file closed by its owner's death: the C++ spelling of Python's
//
//     class ManagedFile:
//         def __init__(self, path):
//             self.fd = os.open(path, os.O_WRONLY | os.O_CREAT)
//             self._closer = weakref.finalize(self, os.close, self.fd)
//
// (the pattern of tempfile.TemporaryDirectory). The finalizer closes the
// descriptor when the owner dies, or earlier when called, and at most once;
// detach() hands the cleanup back to the caller. The program checks with
// fcntl() that the descriptor really is closed and reads the data back.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <weakref/weakref.hpp>

namespace fs = std::filesystem;

// The cleanup: a free function of the descriptor (and a name to print). It
// knows nothing of the ManagedFile, which is already gone when it runs.
void close_file(int fd, const std::string& name) {
  std::cout << "  close_file(" << name << ")\n";
  ::close(fd);
}

// Whether fd is an open descriptor of this process: fcntl fails with EBADF
// on a closed one.
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }
const char* yes_no(bool b) { return b ? "yes" : "no"; }

// What a new reader of the file sees, each line quoted.
void show_on_disk(const fs::path& path) {
  std::cout << path.filename().string() << " on disk:\n";
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) std::cout << "  | " << line << "\n";
}

class ManagedFile {
 public:
  ManagedFile(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

  // Opens (creates) path and registers the finalizer that closes it. A
  // factory, because the finalizer needs a Strong to the object, which does
  // not exist yet inside the constructor.
  static weakref::Strong<ManagedFile> open(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot open " + path.filename().string());
    auto file = weakref::make<ManagedFile>(fd, path.filename().string());
    // The finalizer gets the descriptor and the name, copied -- never the
    // owner. func and its arguments are held strongly until it runs, so a
    // function that held `file` (or a lambda capturing it, or anything that
    // refers to it) would keep the owner alive forever and the "death" that
    // should run it would never come: it would only run at exit. Python's
    // documentation gives the same warning ("func should not be a bound
    // method of obj"). Section 4 shows the mistake.
    file->closer_ = weakref::finalize(file, close_file, fd, file->name_);
    return file;
  }

  void write(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(fd_, text.data(), text.size());
      if (n < 0) throw std::runtime_error("write failed");
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Python's file.close(): calling the finalizer runs it now, and only if
  // it has not run yet, so an explicit close and the death never both close.
  bool close() { return closer_(); }
  bool closed() const { return !closer_.alive(); }
  int fd() const { return fd_; }
  // A handle to the finalizer (copies are the same finalizer).
  weakref::finalize closer() const { return closer_; }

 private:
  friend weakref::Strong<ManagedFile> open_leaky(const fs::path& path);
  int fd_;
  std::string name_;
  weakref::finalize closer_;
};

// The mistake the comment in open() warns about: the finalizer's lambda
// captures the owner itself.
weakref::Strong<ManagedFile> open_leaky(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path.filename().string());
  auto file = weakref::make<ManagedFile>(fd, path.filename().string());
  file->closer_ = weakref::finalize(file, [file] { close_file(file->fd_, file->name_); });
  return file;
}

int main() {
  // A directory of our own; its (random) path is never printed.
  const fs::path dir = fs::temp_directory_path() / ("weakref-06-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::cout << std::boolalpha;

  std::cout << "1. The owner dies: the finalizer closes the file\n";
  {
    auto log = ManagedFile::open(dir / "a.txt");
    log->write("first line\nsecond line\n");
    weakref::finalize f = log->closer();
    const int fd = log->fd();
    std::cout << "f = " << f << "\n";
    std::cout << "f.alive() = " << f.alive() << ", f.atexit() = " << f.atexit()
              << ", descriptor open: " << yes_no(is_open(fd)) << "\n";
    std::cout << "log.reset()\n";
    log.reset();  // the last strong reference: the finalizer runs, then ~ManagedFile
    std::cout << "f.alive() = " << f.alive() << ", descriptor open: " << yes_no(is_open(fd))
              << " (fcntl: EBADF)\n";
    std::cout << "f = " << f << "\n";
    std::cout << "f() = " << f() << " (it ran already: a finalizer runs at most once)\n";
    show_on_disk(dir / "a.txt");
  }

  std::cout << "\n2. Closing early: f() runs the finalizer now, the death runs nothing\n";
  {
    auto file = ManagedFile::open(dir / "b.txt");
    file->write("closed by hand\n");
    const int fd = file->fd();
    const bool ran = file->close();  // runs close_file now
    std::cout << "file->close() = " << ran << "\n";
    std::cout << "closed: " << yes_no(file->closed())
              << ", descriptor open: " << yes_no(is_open(fd)) << "\n";
    std::cout << "file->close() = " << file->close() << " (nothing left to run)\n";
    std::cout << "file.reset()\n";
    file.reset();  // no second close(): the finalizer is dead
    show_on_disk(dir / "b.txt");
  }

  std::cout << "\n3. detach(): the finalizer never runs, the cleanup is handed back\n";
  {
    auto file = ManagedFile::open(dir / "c.txt");
    file->write("detached\n");
    const int fd = file->fd();
    weakref::finalize f = file->closer();
    std::optional<weakref::finalize::info> info = f.detach();
    // info->object is a Strong to the owner, info->func the function with
    // its arguments bound (Python returns (obj, func, args, kwargs)).
    std::cout << "detached from " << weakref::type_name(info->object)
              << ", f.alive() = " << f.alive()
              << ", f.detach() again: " << (f.detach() ? "info" : "nothing") << "\n";
    info->object.reset();
    std::cout << "file.reset()\n";
    file.reset();  // the owner dies; nothing closes the descriptor
    std::cout << "descriptor open: " << yes_no(is_open(fd)) << "; calling info->func()\n";
    info->func();  // the caller now owns the cleanup
    std::cout << "descriptor open: " << yes_no(is_open(fd)) << "\n";
    show_on_disk(dir / "c.txt");
  }

  std::cout << "\n4. The mistake: a finalizer that captures its owner keeps it alive\n";
  {
    auto file = open_leaky(dir / "d.txt");
    weakref::ref<ManagedFile> r(file);
    weakref::finalize f = file->closer();
    const int fd = file->fd();
    std::cout << "file.reset()\n";
    file.reset();  // not the last reference: the finalizer's lambda holds one
    std::cout << "owner alive: " << yes_no(r() != nullptr)
              << ", descriptor open: " << yes_no(is_open(fd)) << " (it would close only at exit)\n";
    const bool ran = f();  // runs, then drops the lambda and its capture: the owner dies
    std::cout << "f() = " << ran << "\n";
    std::cout << "owner alive: " << yes_no(r() != nullptr)
              << ", descriptor open: " << yes_no(is_open(fd)) << "\n";
  }

  fs::remove_all(dir);
  std::cout << "\ntemporary directory removed: " << yes_no(!fs::exists(dir)) << "\n";
}
