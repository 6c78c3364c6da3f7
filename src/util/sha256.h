// Incremental SHA-256 (OpenSSL's EVP interface) with a hex digest.
#pragma once

#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace optiq {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void reset();
  void update(std::string_view data);
  void update(const void* data, size_t n) { update(std::string_view(static_cast<const char*>(data), n)); }
  std::string hex();  // finishes the digest: 64 lower-case hex digits

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace optiq
