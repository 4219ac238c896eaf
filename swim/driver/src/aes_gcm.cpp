// AES-GCM from libcrypto, loaded on first use (aes_gcm.hpp). The OpenSSL
// headers give the functions' types; every call goes through a pointer
// that dlsym filled, so nothing here links against libcrypto.
#include "aes_gcm.hpp"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <climits>
#include <memory>
#include <mutex>

namespace mesh::swim::detail {
namespace {

#define MESH_STRINGIFY2(x) #x
#define MESH_STRINGIFY(x) MESH_STRINGIFY2(x)
#if defined(OPENSSL_SHLIB_VERSION)  // OpenSSL 3: a bare number
constexpr const char* kSoname = "libcrypto.so." MESH_STRINGIFY(OPENSSL_SHLIB_VERSION);
#else  // OpenSSL 1.1: a string
constexpr const char* kSoname = "libcrypto.so." SHLIB_VERSION_NUMBER;
#endif
#undef MESH_STRINGIFY
#undef MESH_STRINGIFY2

// The libcrypto functions used, by name; the type of each is that of the
// declaration in <openssl/evp.h>.
struct Api {
  decltype(&::EVP_CIPHER_CTX_new) ctx_new = nullptr;
  decltype(&::EVP_CIPHER_CTX_free) ctx_free = nullptr;
  decltype(&::EVP_CIPHER_CTX_ctrl) ctx_ctrl = nullptr;
  decltype(&::EVP_aes_128_gcm) aes_128_gcm = nullptr;
  decltype(&::EVP_aes_192_gcm) aes_192_gcm = nullptr;
  decltype(&::EVP_aes_256_gcm) aes_256_gcm = nullptr;
  decltype(&::EVP_EncryptInit_ex) encrypt_init = nullptr;
  decltype(&::EVP_EncryptUpdate) encrypt_update = nullptr;
  decltype(&::EVP_EncryptFinal_ex) encrypt_final = nullptr;
  decltype(&::EVP_DecryptInit_ex) decrypt_init = nullptr;
  decltype(&::EVP_DecryptUpdate) decrypt_update = nullptr;
  decltype(&::EVP_DecryptFinal_ex) decrypt_final = nullptr;
};

template <class Fn>
bool resolve(void* lib, const char* name, Fn& fn, std::string& missing) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    missing += missing.empty() ? name : std::string(", ") + name;
    return false;
  }
  // POSIX guarantees that a function's address from dlsym converts back.
  fn = reinterpret_cast<Fn>(sym);
  return true;
}

// Opens `soname` and fills `api`; nullopt on success, else the reason. On
// failure the library is closed again.
std::optional<std::string> open_api(const char* soname, Api& api) {
  void* lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    return std::string("AES-GCM gossip encryption needs OpenSSL's ") + soname +
           ", which could not be loaded (" + (why != nullptr ? why : "no reason given") +
           "); install it (Debian: libssl3)";
  }
  std::string missing;
  bool ok = true;
  ok &= resolve(lib, "EVP_CIPHER_CTX_new", api.ctx_new, missing);
  ok &= resolve(lib, "EVP_CIPHER_CTX_free", api.ctx_free, missing);
  ok &= resolve(lib, "EVP_CIPHER_CTX_ctrl", api.ctx_ctrl, missing);
  ok &= resolve(lib, "EVP_aes_128_gcm", api.aes_128_gcm, missing);
  ok &= resolve(lib, "EVP_aes_192_gcm", api.aes_192_gcm, missing);
  ok &= resolve(lib, "EVP_aes_256_gcm", api.aes_256_gcm, missing);
  ok &= resolve(lib, "EVP_EncryptInit_ex", api.encrypt_init, missing);
  ok &= resolve(lib, "EVP_EncryptUpdate", api.encrypt_update, missing);
  ok &= resolve(lib, "EVP_EncryptFinal_ex", api.encrypt_final, missing);
  ok &= resolve(lib, "EVP_DecryptInit_ex", api.decrypt_init, missing);
  ok &= resolve(lib, "EVP_DecryptUpdate", api.decrypt_update, missing);
  ok &= resolve(lib, "EVP_DecryptFinal_ex", api.decrypt_final, missing);
  if (!ok) {
    dlclose(lib);
    api = Api{};
    return std::string("AES-GCM gossip encryption: ") + soname + " lacks " + missing;
  }
  // Kept open for the life of the process: the pointers stay valid.
  return std::nullopt;
}

struct Loaded {
  std::once_flag once;
  Api api;
  std::optional<std::string> error;
};

Loaded& loaded() {
  static Loaded l;
  std::call_once(l.once, [] { l.error = open_api(kSoname, l.api); });
  return l;
}

// The api when loaded, else nullptr.
const Api* api() {
  const Loaded& l = loaded();
  return l.error ? nullptr : &l.api;
}

const EVP_CIPHER* cipher_for(const Api& a, std::size_t key_size) {
  switch (key_size) {
    case 16: return a.aes_128_gcm();
    case 24: return a.aes_192_gcm();
    case 32: return a.aes_256_gcm();
    default: return nullptr;
  }
}

bool fits_int(std::size_t n) { return n <= static_cast<std::size_t>(INT_MAX); }

// An EVP_CIPHER_CTX freed through the loaded library.
class Ctx {
 public:
  explicit Ctx(const Api& a) : a_(a), ctx_(a.ctx_new()) {}
  ~Ctx() {
    if (ctx_ != nullptr) a_.ctx_free(ctx_);
  }
  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;
  EVP_CIPHER_CTX* get() const { return ctx_; }

 private:
  const Api& a_;
  EVP_CIPHER_CTX* ctx_;
};

}  // namespace

const char* libcrypto_soname() { return kSoname; }

std::optional<std::string> load_aes_gcm() { return loaded().error; }

std::optional<std::string> probe_aes_gcm(const char* soname) {
  Api scratch;
  return open_api(soname, scratch);
}

bool aes_gcm_seal(ByteView key, const std::uint8_t* nonce, ByteView plain, ByteView aad,
                  std::uint8_t* out) {
  const Api* a = api();
  if (a == nullptr) return false;
  const EVP_CIPHER* cipher = cipher_for(*a, key.size());
  if (cipher == nullptr || !fits_int(plain.size()) || !fits_int(aad.size())) return false;
  const Ctx ctx(*a);
  if (ctx.get() == nullptr) return false;
  int len = 0;
  if (a->encrypt_init(ctx.get(), cipher, nullptr, nullptr, nullptr) != 1) return false;
  if (a->ctx_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kGcmNonceSize), nullptr) != 1)
    return false;
  if (a->encrypt_init(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1) return false;
  if (!aad.empty() &&
      a->encrypt_update(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return false;
  if (!plain.empty() &&
      a->encrypt_update(ctx.get(), out, &len, plain.data(), static_cast<int>(plain.size())) != 1)
    return false;
  if (a->encrypt_final(ctx.get(), out + plain.size(), &len) != 1) return false;
  return a->ctx_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagSize),
                     out + plain.size()) == 1;
}

std::optional<Bytes> aes_gcm_open(ByteView key, const std::uint8_t* nonce, ByteView sealed,
                                  ByteView aad) {
  const Api* a = api();
  if (a == nullptr) return std::nullopt;
  const EVP_CIPHER* cipher = cipher_for(*a, key.size());
  if (cipher == nullptr || sealed.size() < kGcmTagSize || !fits_int(sealed.size()) ||
      !fits_int(aad.size()))
    return std::nullopt;
  const std::size_t n = sealed.size() - kGcmTagSize;
  const Ctx ctx(*a);
  if (ctx.get() == nullptr) return std::nullopt;
  Bytes plain(n);
  int len = 0;
  if (a->decrypt_init(ctx.get(), cipher, nullptr, nullptr, nullptr) != 1) return std::nullopt;
  if (a->ctx_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kGcmNonceSize), nullptr) != 1)
    return std::nullopt;
  if (a->decrypt_init(ctx.get(), nullptr, nullptr, key.data(), nonce) != 1) return std::nullopt;
  if (!aad.empty() &&
      a->decrypt_update(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return std::nullopt;
  if (n > 0 &&
      a->decrypt_update(ctx.get(), plain.data(), &len, sealed.data(), static_cast<int>(n)) != 1)
    return std::nullopt;
  // The tag is const in spirit; OpenSSL's ctrl API takes a non-const pointer.
  Bytes tag(sealed.begin() + static_cast<std::ptrdiff_t>(n), sealed.end());
  if (a->ctx_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagSize), tag.data()) != 1)
    return std::nullopt;
  if (a->decrypt_final(ctx.get(), plain.data() + n, &len) != 1) return std::nullopt;
  return plain;
}

}  // namespace mesh::swim::detail
