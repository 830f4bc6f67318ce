#include "common/cluster/redis_connection.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>
#include <fstream>

#include "common/errors.hpp"

namespace heygem::cluster {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  return tv;
}

RedisValue convert(const redisReply& reply) {
  RedisValue value;
  switch (reply.type) {
    case REDIS_REPLY_STRING:
      value.kind = RedisValue::Kind::string;
      value.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_STATUS:
      value.kind = RedisValue::Kind::status;
      value.text.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_INTEGER:
      value.kind = RedisValue::Kind::integer;
      value.integer = reply.integer;
      break;
    case REDIS_REPLY_ARRAY:
      value.kind = RedisValue::Kind::array;
      value.elements.reserve(reply.elements);
      for (std::size_t i = 0; i < reply.elements; ++i) value.elements.push_back(convert(*reply.element[i]));
      break;
    default:
      break;  // nil
  }
  return value;
}

bool parse_port(std::string_view text, int& port) {
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, port);
  return result.ec == std::errc() && result.ptr == end && port > 0 && port < 65536;
}

}  // namespace

void RedisContextDeleter::operator()(redisContext* context) const noexcept { redisFree(context); }

std::string RedisAddress::text() const {
  if (!unix_socket.empty()) return "unix:" + unix_socket.string();
  return "redis://" + (user.empty() ? "" : user + "@") + host + ":" + std::to_string(port);
}

RedisAddress parse_redis_address(std::string_view text) {
  RedisAddress address;
  const auto fail = [&](const std::string& why) -> RedisAddress {
    throw Error(ErrorCode::invalid_argument, "Redis address \"" + std::string(text) + "\": " + why +
                                                 " (expected redis://[USER@]HOST[:PORT] or unix:/PATH)");
  };
  if (text.rfind("unix:", 0) == 0) {
    auto path = text.substr(5);
    if (path.rfind("//", 0) == 0) path.remove_prefix(2);
    if (path.empty() || path.front() != '/') return fail("a Unix socket needs an absolute path");
    address.unix_socket = std::string(path);
    return address;
  }
  if (text.rfind("redis://", 0) != 0) return fail("unknown scheme");
  auto rest = text.substr(8);
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (rest.substr(slash) != "/" && rest.substr(slash) != "/0") return fail("only database 0 is used");
    rest = rest.substr(0, slash);
  }
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    address.user = std::string(rest.substr(0, at));
    if (address.user.find(':') != std::string::npos)
      return fail("no password in the address: use a password file");
    rest = rest.substr(at + 1);
  }
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("unclosed '['");
    address.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !parse_port(rest.substr(1), address.port)) return fail("bad port");
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    address.host = std::string(rest.substr(0, colon));
    if (!parse_port(rest.substr(colon + 1), address.port)) return fail("bad port");
  } else {
    address.host = std::string(rest);
  }
  if (address.host.empty()) return fail("no host");
  return address;
}

std::string read_password_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::invalid_argument, "Redis password file " + file.string() + ": cannot be read");
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string RedisValue::str() const {
  if (kind == Kind::integer) return std::to_string(integer);
  return text;
}

long long RedisValue::as_integer() const {
  if (kind == Kind::integer) return integer;
  long long value = 0;
  if (kind == Kind::string) {
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    if (result.ec == std::errc() && result.ptr == text.data() + text.size()) return value;
  }
  throw RedisCommandError("Redis: expected an integer reply, got \"" + text + "\"");
}

RedisConnection RedisConnection::open(const RedisAddress& address, const RedisCredentials& credentials,
                                      std::chrono::milliseconds timeout) {
  const auto tv = to_timeval(timeout);
  std::unique_ptr<redisContext, RedisContextDeleter> context(
      address.unix_socket.empty() ? redisConnectWithTimeout(address.host.c_str(), address.port, tv)
                                  : redisConnectUnixWithTimeout(address.unix_socket.c_str(), tv));
  if (!context) throw RedisUnavailable("Redis at " + address.text() + ": out of memory");
  if (context->err) throw RedisUnavailable("cannot reach Redis at " + address.text() + ": " + context->errstr);
  RedisConnection connection(std::move(context), address, timeout);
  connection.set_timeout(timeout);
  if (!credentials.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!credentials.user.empty()) auth.push_back(credentials.user);
    auth.push_back(credentials.password);
    try {
      connection.command(auth);
    } catch (const RedisCommandError& e) {
      throw RedisCommandError("Redis at " + address.text() + " refused the credentials: " + e.what());
    }
  }
  return connection;
}

void RedisConnection::set_timeout(std::chrono::milliseconds timeout) {
  redisSetTimeout(context_.get(), to_timeval(timeout));
}

RedisValue RedisConnection::command(const std::vector<std::string>& args,
                                    std::optional<std::chrono::milliseconds> timeout) {
  if (broken_) throw RedisUnavailable("the connection to Redis at " + address_.text() + " was lost");
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (timeout) set_timeout(*timeout);
  ReplyPtr reply(static_cast<redisReply*>(
      redisCommandArgv(context_.get(), static_cast<int>(args.size()), argv.data(), lengths.data())));
  if (timeout) set_timeout(timeout_);
  if (!reply) {
    broken_ = true;  // hiredis cannot reuse a context after an I/O error
    throw RedisUnavailable("lost the connection to Redis at " + address_.text() + ": " + context_->errstr);
  }
  if (reply->type == REDIS_REPLY_ERROR) throw RedisCommandError(std::string(reply->str, reply->len));
  return convert(*reply);
}

RedisValue RedisSession::command(const std::vector<std::string>& args, std::optional<std::chrono::milliseconds> timeout) {
  if (!connection_ || connection_->broken()) {
    connection_.reset();
    connection_.emplace(RedisConnection::open(address_, credentials_, timeout_));
  }
  return connection_->command(args, timeout);
}

std::vector<std::pair<std::string, std::string>> field_pairs(const RedisValue& flat) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (std::size_t i = 0; i + 1 < flat.elements.size(); i += 2)
    pairs.emplace_back(flat.elements[i].str(), flat.elements[i + 1].str());
  return pairs;
}

}  // namespace heygem::cluster
