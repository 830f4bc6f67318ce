#pragma once
// A synchronous Redis connection over hiredis: the address (TCP or Unix socket), AUTH with an ACL
// user, one command at a time with a timeout. Every hiredis context and reply has one owner (RAII);
// replies are copied into a plain RedisValue tree at once. Not thread-safe: one per thread.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace heygem::cluster {

// redis://[USER@]HOST[:PORT] or unix:PATH (also unix://PATH). The password never appears here: it
// comes from a file (cluster.password_file, $HEYGEM_REDIS_PASSWORD_FILE).
struct RedisAddress {
  std::string host;                   // TCP host, "" for a Unix socket
  int port = 6379;
  std::filesystem::path unix_socket;  // set for unix:
  std::string user;                   // ACL user from the URL ("" = default)
  std::string text() const;           // for messages: redis://host:port or unix:/path
};

// Throws heygem::Error(invalid_argument) naming what is wrong.
RedisAddress parse_redis_address(std::string_view text);

struct RedisCredentials {
  std::string user;      // "" = no AUTH unless a password is set (then the default user)
  std::string password;  // "" = no AUTH
};

// The first line of `file` (a trailing newline dropped). Throws Error(invalid_argument) naming it.
std::string read_password_file(const std::filesystem::path& file);

// Redis is not reachable (refused, timed out, connection lost): worth a retry later.
class RedisUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Redis answered with an error reply (-ERR ..., -NOSCRIPT, a script's error).
class RedisCommandError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RedisValue {
  enum class Kind { nil, string, integer, array, status };
  Kind kind = Kind::nil;
  std::string text;  // string and status
  long long integer = 0;
  std::vector<RedisValue> elements;

  bool is_nil() const { return kind == Kind::nil; }
  // The text of a string or status, the digits of an integer; "" for nil.
  std::string str() const;
  // integer, or a string holding one; throws RedisCommandError otherwise.
  long long as_integer() const;
};

struct RedisContextDeleter {
  void operator()(redisContext* context) const noexcept;
};

class RedisConnection {
 public:
  // Connects and authenticates. Throws RedisUnavailable when Redis cannot be reached,
  // RedisCommandError when AUTH is refused.
  static RedisConnection open(const RedisAddress& address, const RedisCredentials& credentials,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // One command, its reply. `timeout` overrides the connection's for this command (a blocking
  // XREAD's BLOCK plus a margin). Throws RedisUnavailable (the connection is then broken, see
  // broken()) or RedisCommandError.
  RedisValue command(const std::vector<std::string>& args,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  bool broken() const { return broken_; }
  const RedisAddress& address() const { return address_; }

 private:
  RedisConnection(std::unique_ptr<redisContext, RedisContextDeleter> context, RedisAddress address,
                  std::chrono::milliseconds timeout)
      : context_(std::move(context)), address_(std::move(address)), timeout_(timeout) {}
  void set_timeout(std::chrono::milliseconds timeout);

  std::unique_ptr<redisContext, RedisContextDeleter> context_;
  RedisAddress address_;
  std::chrono::milliseconds timeout_;
  bool broken_ = false;
};

// A connection that reconnects on demand: command() opens one when there is none (or the last one
// broke) and throws RedisUnavailable while Redis is down, so a caller can retry later.
class RedisSession {
 public:
  RedisSession(RedisAddress address, RedisCredentials credentials,
               std::chrono::milliseconds timeout = std::chrono::seconds(5))
      : address_(std::move(address)), credentials_(std::move(credentials)), timeout_(timeout) {}
  RedisValue command(const std::vector<std::string>& args,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  const RedisAddress& address() const { return address_; }

 private:
  RedisAddress address_;
  RedisCredentials credentials_;
  std::chrono::milliseconds timeout_;
  std::optional<RedisConnection> connection_;
};

// Field/value pairs of a flat array reply (HGETALL, a stream entry's fields).
std::vector<std::pair<std::string, std::string>> field_pairs(const RedisValue& flat);

}  // namespace heygem::cluster
