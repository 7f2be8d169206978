#include "server/auth/jwks.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/auth/base64url.h"
#include "server/auth/strict_json.h"

namespace secret_resolver {
namespace auth {
namespace {

using PkeyPtr = VerificationKey::PkeyPtr;

// RSA verification cost grows with the modulus; no issuer needs more than this.
constexpr int kMaxRsaBits = 8192;
// Public exponents are small in practice (65537); a huge one only costs verification time.
constexpr size_t kMaxRsaExponentBytes = 8;
constexpr size_t kCoordinateBytes = 32;  // P-256 coordinates and Ed25519 public keys

struct BnDeleter {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* bld) const { OSSL_PARAM_BLD_free(bld); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* params) const { OSSL_PARAM_free(params); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

// Errors left on OpenSSL's thread-local queue would be blamed on whatever runs next.
absl::Status OpenSslError(absl::string_view where) {
  ERR_clear_error();
  return absl::InvalidArgumentError(where);
}

std::string Member(size_t index, absl::string_view name) {
  return absl::StrCat("keys[", index, "].", name);
}

// Reads a required base64url string member of a JWK.
absl::StatusOr<std::string> DecodeMember(const nlohmann::json& jwk, size_t index,
                                         const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end()) return absl::InvalidArgumentError(Member(index, name) + ": missing");
  if (!it->is_string()) {
    return absl::InvalidArgumentError(Member(index, name) + ": not a string");
  }
  std::optional<std::string> bytes = Base64UrlDecode(it->get_ref<const std::string&>());
  if (!bytes.has_value()) {
    return absl::InvalidArgumentError(Member(index, name) + ": invalid base64url");
  }
  return *std::move(bytes);
}

// Returns the member `name` if it is a string, nullopt if absent, or an error if another type.
absl::StatusOr<std::optional<std::string>> OptionalString(const nlohmann::json& jwk, size_t index,
                                                          const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end()) return std::optional<std::string>();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(Member(index, name) + ": not a string");
  }
  return std::optional<std::string>(it->get<std::string>());
}

absl::StatusOr<PkeyPtr> PkeyFromParams(const char* type_name, const OSSL_PARAM* params,
                                       const std::string& where) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type_name, nullptr));
  EVP_PKEY* raw = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) !=
          1) {
    return OpenSslError(where + ": not a valid public key");
  }
  return PkeyPtr(raw);
}

absl::StatusOr<PkeyPtr> RsaKey(const nlohmann::json& jwk, size_t index) {
  absl::StatusOr<std::string> n = DecodeMember(jwk, index, "n");
  if (!n.ok()) return n.status();
  absl::StatusOr<std::string> e = DecodeMember(jwk, index, "e");
  if (!e.ok()) return e.status();

  BnPtr n_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                       static_cast<int>(n->size()), nullptr));
  BnPtr e_bn(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                       static_cast<int>(e->size()), nullptr));
  if (n_bn == nullptr || e_bn == nullptr) return OpenSslError(Member(index, "n") + ": bad value");
  if (BN_num_bits(n_bn.get()) > kMaxRsaBits) {
    return absl::InvalidArgumentError(
        absl::StrCat(Member(index, "n"), ": modulus larger than ", kMaxRsaBits, " bits"));
  }
  if (BN_num_bits(n_bn.get()) < 2 || !BN_is_odd(n_bn.get())) {
    return absl::InvalidArgumentError(Member(index, "n") + ": not an RSA modulus");
  }
  if (e->size() > kMaxRsaExponentBytes || !BN_is_odd(e_bn.get()) || BN_is_one(e_bn.get())) {
    return absl::InvalidArgumentError(Member(index, "e") + ": not a usable public exponent");
  }

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (bld == nullptr || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n_bn.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e_bn.get()) != 1) {
    return OpenSslError(absl::StrCat("keys[", index, "]: cannot build RSA key"));
  }
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (params == nullptr)
    return OpenSslError(absl::StrCat("keys[", index, "]: cannot build RSA key"));
  return PkeyFromParams("RSA", params.get(), absl::StrCat("keys[", index, "]"));
}

absl::StatusOr<PkeyPtr> EcP256Key(const nlohmann::json& jwk, size_t index) {
  absl::StatusOr<std::string> x = DecodeMember(jwk, index, "x");
  if (!x.ok()) return x.status();
  absl::StatusOr<std::string> y = DecodeMember(jwk, index, "y");
  if (!y.ok()) return y.status();
  if (x->size() != kCoordinateBytes) {
    return absl::InvalidArgumentError(Member(index, "x") + ": not 32 bytes");
  }
  if (y->size() != kCoordinateBytes) {
    return absl::InvalidArgumentError(Member(index, "y") + ": not 32 bytes");
  }
  // SEC 1 uncompressed point: 0x04 || x || y.
  std::string point = absl::StrCat(absl::string_view("\x04", 1), *x, *y);
  char group[] = SN_X9_62_prime256v1;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()),
      OSSL_PARAM_construct_end(),
  };
  const std::string where = absl::StrCat("keys[", index, "]");
  absl::StatusOr<PkeyPtr> pkey = PkeyFromParams("EC", params, where);
  if (!pkey.ok()) return pkey.status();
  // Importing decodes the point; check it explicitly too, so an off-curve point (the invalid
  // curve attack) can never become a key whatever the import path does.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey->get(), nullptr));
  if (check == nullptr || EVP_PKEY_public_check(check.get()) != 1) {
    return OpenSslError(where + ": point is not on P-256");
  }
  return pkey;
}

absl::StatusOr<PkeyPtr> Ed25519Key(const nlohmann::json& jwk, size_t index) {
  absl::StatusOr<std::string> x = DecodeMember(jwk, index, "x");
  if (!x.ok()) return x.status();
  if (x->size() != kCoordinateBytes) {
    return absl::InvalidArgumentError(Member(index, "x") + ": not 32 bytes");
  }
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(x->data()), x->size());
  if (raw == nullptr) return OpenSslError(Member(index, "x") + ": not an Ed25519 public key");
  return PkeyPtr(raw);
}

// Parses keys[index]. Returns null (no error) for a key this sidecar does not use.
absl::StatusOr<std::shared_ptr<const VerificationKey>> ParseKey(const nlohmann::json& jwk,
                                                                size_t index) {
  if (!jwk.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("keys[", index, "]: not an object"));
  }
  absl::StatusOr<std::optional<std::string>> kty = OptionalString(jwk, index, "kty");
  if (!kty.ok()) return kty.status();
  if (!kty->has_value()) return absl::InvalidArgumentError(Member(index, "kty") + ": missing");

  std::optional<KeyType> type;
  if (**kty == "RSA") {
    type = KeyType::kRsa;
  } else if (**kty == "EC" || **kty == "OKP") {
    absl::StatusOr<std::optional<std::string>> crv = OptionalString(jwk, index, "crv");
    if (!crv.ok()) return crv.status();
    if (!crv->has_value()) return absl::InvalidArgumentError(Member(index, "crv") + ": missing");
    if (**kty == "EC" && **crv == "P-256") type = KeyType::kEcP256;
    if (**kty == "OKP" && **crv == "Ed25519") type = KeyType::kEd25519;
  }
  if (!type.has_value()) return nullptr;  // another key type or curve: not ours

  absl::StatusOr<std::optional<std::string>> use = OptionalString(jwk, index, "use");
  if (!use.ok()) return use.status();
  if (use->has_value() && **use != "sig") return nullptr;  // e.g. an encryption key

  if (auto ops = jwk.find("key_ops"); ops != jwk.end()) {
    if (!ops->is_array()) {
      return absl::InvalidArgumentError(Member(index, "key_ops") + ": not an array");
    }
    bool verify = false;
    for (const nlohmann::json& op : *ops) {
      if (!op.is_string()) {
        return absl::InvalidArgumentError(Member(index, "key_ops") + ": not an array of strings");
      }
      verify = verify || op.get_ref<const std::string&>() == "verify";
    }
    if (!verify) return nullptr;
  }

  absl::StatusOr<std::optional<std::string>> kid = OptionalString(jwk, index, "kid");
  if (!kid.ok()) return kid.status();
  if (!kid->has_value()) return nullptr;  // no token can name it
  if ((*kid)->empty()) return absl::InvalidArgumentError(Member(index, "kid") + ": empty");

  absl::StatusOr<std::optional<std::string>> alg = OptionalString(jwk, index, "alg");
  if (!alg.ok()) return alg.status();

  absl::StatusOr<PkeyPtr> pkey;
  switch (*type) {
    case KeyType::kRsa:
      pkey = RsaKey(jwk, index);
      break;
    case KeyType::kEcP256:
      pkey = EcP256Key(jwk, index);
      break;
    case KeyType::kEd25519:
      pkey = Ed25519Key(jwk, index);
      break;
  }
  if (!pkey.ok()) return pkey.status();
  return std::make_shared<const VerificationKey>(**std::move(kid), *type,
                                                 alg->value_or(std::string()), *std::move(pkey));
}

// libcurl's global state must be set up once, before any thread uses it.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

struct ResponseBody {
  std::string data;
  size_t limit = 0;
  bool too_large = false;
};

size_t AppendBody(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* body = static_cast<ResponseBody*>(userdata);
  const size_t n = size * nmemb;
  if (body->data.size() + n > body->limit) {
    body->too_large = true;
    return 0;  // makes libcurl abort the transfer
  }
  body->data.append(ptr, n);
  return n;
}

absl::StatusOr<std::string> HttpGet(const JwksUrlOptions& options) {
  InitCurlOnce();
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("jwks fetch: curl_easy_init failed");
  ResponseBody body;
  body.limit = options.max_document_bytes;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, options.url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, options.allow_insecure_http ? "https,http" : "https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM-based DNS timeouts
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.connect_timeout)));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(options.fetch_timeout)));
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "secret-resolver");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);

  const CURLcode rc = curl_easy_perform(c);
  if (body.too_large) {
    return absl::UnavailableError(absl::StrCat("jwks fetch ", options.url, ": response over ",
                                               options.max_document_bytes, " bytes"));
  }
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("jwks fetch ", options.url, ": ",
                                               error[0] != 0 ? error : curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return absl::UnavailableError(
        absl::StrCat("jwks fetch ", options.url, ": HTTP status ", status));
  }
  return std::move(body.data);
}

}  // namespace

absl::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kRsa:
      return "RSA";
    case KeyType::kEcP256:
      return "EC P-256";
    case KeyType::kEd25519:
      return "Ed25519";
  }
  return "unknown";
}

VerificationKey::VerificationKey(std::string kid, KeyType type, std::string alg, PkeyPtr pkey)
    : kid_(std::move(kid)),
      type_(type),
      alg_(std::move(alg)),
      bits_(pkey == nullptr ? 0 : EVP_PKEY_get_bits(pkey.get())),
      pkey_(std::move(pkey)) {}

std::shared_ptr<const VerificationKey> KeySet::Find(absl::string_view kid) const {
  auto it = keys_.find(kid);
  return it == keys_.end() ? nullptr : it->second;
}

bool KeySet::Publishes(const VerificationKey& key) const {
  auto it = keys_.find(key.kid());
  return it != keys_.end() && it->second.get() == &key;
}

std::vector<std::string> KeySet::kids() const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const auto& [kid, key] : keys_) out.push_back(kid);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<KeySet> ParseJwks(absl::string_view json) {
  std::optional<nlohmann::json> doc = ParseStrictJson(json);
  if (!doc.has_value()) {
    return absl::InvalidArgumentError("jwks: not valid JSON (or a repeated member name)");
  }
  if (!doc->is_object()) return absl::InvalidArgumentError("jwks: not a JSON object");
  auto keys = doc->find("keys");
  if (keys == doc->end() || !keys->is_array()) {
    return absl::InvalidArgumentError("keys: missing or not an array");
  }
  KeySet set;
  for (size_t i = 0; i < keys->size(); ++i) {
    absl::StatusOr<std::shared_ptr<const VerificationKey>> key = ParseKey((*keys)[i], i);
    if (!key.ok()) return key.status();
    if (*key == nullptr) continue;
    const std::string& kid = (*key)->kid();
    if (!set.keys_.emplace(kid, *std::move(key)).second) {
      // Two keys under one id: which one verifies would be arbitrary.
      return absl::InvalidArgumentError(Member(i, "kid") + ": duplicate key id");
    }
  }
  return set;
}

// --- JwksSource ---

JwksSource::JwksSource(JwksFileOptions options)
    : kind_(Kind::kFile),
      file_options_(std::move(options)),
      keys_(std::make_shared<const KeySet>()) {}

JwksSource::JwksSource(JwksUrlOptions options)
    : kind_(Kind::kUrl),
      url_options_(std::move(options)),
      keys_(std::make_shared<const KeySet>()) {}

JwksSource::~JwksSource() = default;

absl::StatusOr<std::unique_ptr<JwksSource>> JwksSource::FromFile(JwksFileOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("jwks file: clock is required");
  if (options.path.empty()) return absl::InvalidArgumentError("jwks file: path is empty");
  std::unique_ptr<JwksSource> source(new JwksSource(std::move(options)));
  std::lock_guard<std::mutex> load(source->load_mu_);
  absl::Status status = source->LoadFileLocked(/*force=*/true);
  if (!status.ok()) return status;
  return source;
}

absl::StatusOr<std::unique_ptr<JwksSource>> JwksSource::FromUrl(JwksUrlOptions options) {
  if (options.clock == nullptr) return absl::InvalidArgumentError("jwks url: clock is required");
  const bool https = absl::StartsWithIgnoreCase(options.url, "https://");
  const bool http = absl::StartsWithIgnoreCase(options.url, "http://");
  if (!https && !(http && options.allow_insecure_http)) {
    return absl::InvalidArgumentError(http ? "jwks url: plain http is not allowed (https only)"
                                           : "jwks url: must be an https:// URL");
  }
  if (options.url.size() <= (https ? 8u : 7u)) {
    return absl::InvalidArgumentError("jwks url: no host");
  }
  std::unique_ptr<JwksSource> source(new JwksSource(std::move(options)));
  std::lock_guard<std::mutex> load(source->load_mu_);
  source->FetchUrlLocked().IgnoreError();  // recorded in stats; lookups retry
  return source;
}

Clock* JwksSource::clock() const {
  return kind_ == Kind::kFile ? file_options_.clock : url_options_.clock;
}

std::shared_ptr<const KeySet> JwksSource::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

JwksSourceStats JwksSource::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  JwksSourceStats out = stats_;
  out.key_count = keys_->size();
  return out;
}

bool JwksSource::PeriodicLoadDueLocked(absl::Time now) const {
  if (kind_ == Kind::kFile) return now - last_check_ >= file_options_.check_interval;
  return now >= next_refresh_;
}

absl::StatusOr<std::shared_ptr<const VerificationKey>> JwksSource::Lookup(absl::string_view kid) {
  bool due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    due = PeriodicLoadDueLocked(clock()->Now());
  }
  // Loads if a periodic load is still due once load_mu_ is held.
  auto load_if_due = [this] {
    bool still_due;
    {
      std::lock_guard<std::mutex> lock(mu_);
      still_due = PeriodicLoadDueLocked(clock()->Now());
    }
    if (still_due) LoadLocked(/*force=*/false).IgnoreError();
  };
  if (due) {
    // Whoever gets here first loads; the others go on with the keys they have.
    std::unique_lock<std::mutex> load(load_mu_, std::try_to_lock);
    if (load.owns_lock()) load_if_due();
  }
  if (auto key = Current()->Find(kid)) return key;
  {
    // Another thread may be loading (a rotation: the load marks itself done before its keys
    // are in): wait for it, and load if one is still due, rather than refuse a token the new
    // keys accept.
    std::lock_guard<std::mutex> load(load_mu_);
    load_if_due();
    if (auto key = Current()->Find(kid)) return key;
  }

  if (kind_ == Kind::kUrl) {
    // An unknown kid may mean the issuer rotated keys: refetch, but rate-limited, so a stream of
    // tokens with made-up key ids cannot turn into a stream of requests to the issuer.
    auto refetch_allowed = [this] {
      std::lock_guard<std::mutex> lock(mu_);
      return clock()->Now() - last_attempt_ >= url_options_.min_refetch_interval;
    };
    if (refetch_allowed()) {
      std::lock_guard<std::mutex> load(load_mu_);
      if (auto key = Current()->Find(kid)) return key;  // the fetch we waited for brought it
      if (refetch_allowed()) {
        FetchUrlLocked().IgnoreError();
        if (auto key = Current()->Find(kid)) return key;
      }
    }
  }
  return absl::NotFoundError("unknown key id");
}

std::optional<bool> JwksSource::IsPublishedWithoutLoading(const VerificationKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (PeriodicLoadDueLocked(clock()->Now())) return std::nullopt;
  return keys_->Publishes(key);
}

absl::Status JwksSource::Reload() {
  std::lock_guard<std::mutex> load(load_mu_);
  return LoadLocked(/*force=*/true);
}

absl::Status JwksSource::LoadLocked(bool force) {
  return kind_ == Kind::kFile ? LoadFileLocked(force) : FetchUrlLocked();
}

void JwksSource::RecordLoad(absl::StatusOr<KeySet> parsed) {
  std::lock_guard<std::mutex> lock(mu_);
  if (parsed.ok()) {
    keys_ = std::make_shared<const KeySet>(*std::move(parsed));
    ++stats_.loads;
    stats_.last_error.clear();
  } else {
    ++stats_.load_failures;
    stats_.last_error = std::string(parsed.status().message());
  }
}

absl::Status JwksSource::LoadFileLocked(bool force) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_check_ = clock()->Now();
  }
  const std::string& path = file_options_.path;
  // Read through one descriptor so the signature and the bytes describe the same file even if
  // it is replaced meanwhile.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    have_signature_ = false;
    absl::Status status =
        err == ENOENT ? absl::NotFoundError(absl::StrCat("jwks file ", path, ": does not exist"))
                      : absl::FailedPreconditionError(absl::StrCat(
                            "jwks file ", path, ": cannot open: ", std::strerror(err)));
    RecordLoad(status);
    return status;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } closer{fd};

  struct stat st;
  if (fstat(fd, &st) != 0) {
    absl::Status status = absl::FailedPreconditionError(
        absl::StrCat("jwks file ", path, ": cannot stat: ", std::strerror(errno)));
    RecordLoad(status);
    return status;
  }
  FileSignature signature;
  signature.device = st.st_dev;
  signature.inode = st.st_ino;
  signature.size = st.st_size;
  signature.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (!force && have_signature_ && signature == signature_) return absl::OkStatus();
  // Remember what was examined even if it fails to parse: a broken file is not reread (and
  // reported) every interval, only once it changes again.
  have_signature_ = true;
  signature_ = signature;

  if (!S_ISREG(st.st_mode)) {
    absl::Status status =
        absl::FailedPreconditionError(absl::StrCat("jwks file ", path, ": not a regular file"));
    RecordLoad(status);
    return status;
  }
  std::string data;
  char buf[8192];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status status = absl::FailedPreconditionError(
          absl::StrCat("jwks file ", path, ": cannot read: ", std::strerror(errno)));
      RecordLoad(status);
      return status;
    }
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > file_options_.max_document_bytes) {
      absl::Status status = absl::InvalidArgumentError(absl::StrCat(
          "jwks file ", path, ": larger than ", file_options_.max_document_bytes, " bytes"));
      RecordLoad(status);
      return status;
    }
    data.append(buf, static_cast<size_t>(n));
  }
  absl::StatusOr<KeySet> parsed = ParseJwks(data);
  absl::Status status = parsed.status();
  if (!status.ok()) {
    status = absl::InvalidArgumentError(absl::StrCat("jwks file ", path, ": ", status.message()));
    parsed = status;
  }
  RecordLoad(std::move(parsed));
  return status;
}

absl::Status JwksSource::FetchUrlLocked() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_attempt_ = clock()->Now();
    ++stats_.fetches;
  }
  absl::StatusOr<std::string> body = HttpGet(url_options_);
  absl::StatusOr<KeySet> parsed =
      body.ok() ? ParseJwks(*body) : absl::StatusOr<KeySet>(body.status());
  absl::Status status = parsed.status();
  if (body.ok() && !status.ok()) {
    status = absl::InvalidArgumentError(
        absl::StrCat("jwks url ", url_options_.url, ": ", status.message()));
    parsed = status;
  }
  RecordLoad(std::move(parsed));
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = clock()->Now();
    next_refresh_ =
        now + (status.ok() ? url_options_.refresh_interval : url_options_.min_refetch_interval);
  }
  return status;
}

}  // namespace auth
}  // namespace secret_resolver
