// main() for the fuzz targets outside libFuzzer (GCC builds, ctest): runs
// every file of the directories (or files) named on the command line
// through LLVMFuzzerTestOneInput once. This is how the seed corpora and
// the checked-in crash reproducers stay regression tests in the normal
// sanitizer build. A missing directory is skipped: most targets have no
// reproducers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

void run_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::uint8_t> bytes(text.begin(), text.end());
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.string().c_str(), bytes.size());
  // A copy of exactly `size` bytes, so that ASan sees a read past the end.
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_regular_file(arg, ec)) {
      run_file(arg);
      ++files;
      continue;
    }
    if (!fs::is_directory(arg, ec)) continue;
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(arg))
      if (entry.is_regular_file()) paths.push_back(entry.path());
    std::sort(paths.begin(), paths.end());  // a stable order for the log
    for (const auto& p : paths) run_file(p);
    files += paths.size();
  }
  std::fprintf(stderr, "replay: %zu inputs, all passed\n", files);
  return 0;
}
