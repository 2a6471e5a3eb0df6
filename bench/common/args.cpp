#include "args.hpp"

#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace qwen3vl::bench {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Status parse_integer(const std::string& flag, const std::string& text, int64_t lo, int64_t hi,
                     int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < lo || value > hi)
    return make_error(StatusCode::kInvalidArgument, flag, " = '", text, "': allowed integers ", lo,
                      "..", hi);
  *out = value;
  return Status();
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');)
    if (!item.empty()) items.push_back(item);
  return items;
}

ArgParser::ArgParser(std::string routine, std::string about)
    : routine_(std::move(routine)), about_(std::move(about)) {
  add({"--json", "FILE", "write the report as JSON (machine, commit, date, rows); - = stdout", "",
       true, [this](const std::string&, const std::string& v) {
         json_ = v;
         return Status();
       }});
  add({"--csv", "FILE", "write the report's rows as CSV; - = stdout", "", true,
       [this](const std::string&, const std::string& v) {
         csv_ = v;
         return Status();
       }});
  add({"--help", "", "this text", "", false, [this](const std::string&, const std::string&) {
         help_ = true;
         return Status();
       }});
}

void ArgParser::add(Flag flag) { flags_.push_back(std::move(flag)); }

void ArgParser::add_int(const char* name, int64_t* target, int64_t lo, int64_t hi,
                        const char* help) {
  add({name, "N", help, std::to_string(*target), true,
       [=](const std::string& f, const std::string& v) {
         return parse_integer(f, v, lo, hi, target);
       }});
}

void ArgParser::add_int(const char* name, int* target, int64_t lo, int64_t hi, const char* help) {
  add({name, "N", help, std::to_string(*target), true,
       [=](const std::string& f, const std::string& v) {
         int64_t x = 0;
         QWEN3VL_RETURN_IF_ERROR(parse_integer(f, v, lo, hi, &x));
         *target = static_cast<int>(x);
         return Status();
       }});
}

void ArgParser::add_number(const char* name, double* target, double lo, double hi,
                           const char* help) {
  std::ostringstream def;
  def << *target;
  add({name, "X", help, def.str(), true, [=](const std::string& f, const std::string& v) {
         char* end = nullptr;
         errno = 0;
         const double x = std::strtod(v.c_str(), &end);
         if (v.empty() || *end != '\0' || errno == ERANGE || !(x >= lo && x <= hi))
           return make_error(StatusCode::kInvalidArgument, f, " = '", v, "': allowed a number in [",
                             lo, ", ", hi, "]");
         *target = x;
         return Status();
       }});
}

void ArgParser::add_choice(const char* name, std::string* target, std::vector<std::string> allowed,
                           const char* help) {
  std::string placeholder;
  for (const std::string& a : allowed) placeholder += (placeholder.empty() ? "" : "|") + a;
  add({name, placeholder, help, *target, true, [=](const std::string& f, const std::string& v) {
         for (const std::string& a : allowed)
           if (v == a) {
             *target = v;
             return Status();
           }
         return make_error(StatusCode::kInvalidArgument, f, " = '", v, "': allowed ",
                           join(allowed));
       }});
}

void ArgParser::add_dtype(const char* name, DType* target, std::vector<DType> allowed,
                          const char* help) {
  std::vector<std::string> names;
  for (DType d : allowed) names.push_back(to_string(d));
  std::string placeholder;
  for (const std::string& a : names) placeholder += (placeholder.empty() ? "" : "|") + a;
  add({name, placeholder, help, to_string(*target), true,
       [=](const std::string& f, const std::string& v) {
         for (DType d : allowed)
           if (v == to_string(d)) {
             *target = d;
             return Status();
           }
         return make_error(StatusCode::kInvalidArgument, f, " = '", v, "': allowed ", join(names));
       }});
}

void ArgParser::add_int_list(const char* name, std::vector<int64_t>* target, int64_t lo, int64_t hi,
                             const char* help) {
  std::string def;
  for (int64_t x : *target) def += (def.empty() ? "" : ",") + std::to_string(x);
  add({name, "N[,N...]", help, def, true, [=](const std::string& f, const std::string& v) {
         std::vector<int64_t> values;
         for (const std::string& item : split_commas(v)) {
           int64_t x = 0;
           QWEN3VL_RETURN_IF_ERROR(parse_integer(f, item, lo, hi, &x));
           values.push_back(x);
         }
         if (values.empty())
           return make_error(StatusCode::kInvalidArgument, f, " = '", v,
                             "': allowed a comma-separated list of integers ", lo, "..", hi);
         *target = values;
         return Status();
       }});
}

void ArgParser::add_word_list(const char* name, std::vector<std::string>* target,
                              std::vector<std::string> allowed, const char* help) {
  std::string def;
  for (const std::string& x : *target) def += (def.empty() ? "" : ",") + x;
  std::string placeholder = "W[,W...]";
  if (!allowed.empty()) {
    placeholder.clear();
    for (const std::string& a : allowed) placeholder += (placeholder.empty() ? "" : "|") + a;
    placeholder += "[,...]";
  }
  add({name, placeholder, help, def, true, [=](const std::string& f, const std::string& v) {
         std::vector<std::string> values = split_commas(v);
         for (const std::string& item : values) {
           bool ok = allowed.empty();
           for (const std::string& a : allowed) ok = ok || item == a;
           if (!ok)
             return make_error(StatusCode::kInvalidArgument, f, " = '", v, "': '", item,
                               "' is not one of ", join(allowed));
         }
         if (values.empty())
           return make_error(StatusCode::kInvalidArgument, f, " = '", v,
                             "': allowed a comma-separated list");
         *target = values;
         return Status();
       }});
}

void ArgParser::add_string(const char* name, std::string* target, const char* placeholder,
                           const char* help) {
  add({name, placeholder, help, *target, true, [=](const std::string&, const std::string& v) {
         *target = v;
         return Status();
       }});
}

void ArgParser::add_switch(const char* name, bool* target, const char* help) {
  add({name, "", help, "", false, [=](const std::string&, const std::string&) {
         *target = true;
         return Status();
       }});
}

void ArgParser::add_custom(
    const char* name, const char* placeholder, const char* help,
    std::function<Status(const std::string& flag, const std::string& value)> apply) {
  add({name, placeholder, help, "", true, std::move(apply)});
}

Status ArgParser::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i], value;
    const size_t eq = name.find('=');
    const bool inline_value = name.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "-h") name = "--help";
    const Flag* flag = nullptr;
    for (const Flag& f : flags_)
      if (name == f.name) flag = &f;
    if (!flag)
      return make_error(StatusCode::kInvalidArgument, "unknown argument '", args[i],
                        "': see qwen3vl-attn-bench ", routine_, " --help");
    if (flag->takes_value && !inline_value) {
      if (i + 1 == args.size())
        return make_error(StatusCode::kInvalidArgument, name, " needs a value");
      value = args[++i];
    } else if (!flag->takes_value && inline_value) {
      return make_error(StatusCode::kInvalidArgument, name, " = '", value, "': takes no value");
    }
    QWEN3VL_RETURN_IF_ERROR(flag->apply(name, value));
    set_.push_back(name);
  }
  return Status();
}

bool ArgParser::was_set(const std::string& name) const {
  for (const std::string& s : set_)
    if (s == name) return true;
  return false;
}

std::string ArgParser::help() const {
  std::ostringstream os;
  os << "usage: qwen3vl-attn-bench " << routine_ << " [--flag value ...]\n\n" << about_ << "\n";
  os << "\nFlags (--flag VALUE or --flag=VALUE; switches take no value):\n";
  // The routine's own flags first, then the three every routine has (declared first).
  std::vector<const Flag*> order;
  for (size_t i = 3; i < flags_.size(); ++i) order.push_back(&flags_[i]);
  for (size_t i = 0; i < 3 && i < flags_.size(); ++i) order.push_back(&flags_[i]);
  for (const Flag* flag : order) {
    const Flag& f = *flag;
    std::string head = "  " + f.name + (f.placeholder.empty() ? "" : " " + f.placeholder);
    if (head.size() < 26)
      head.resize(26, ' ');
    else
      head += "\n" + std::string(26, ' ');
    os << head << f.help;
    if (!f.default_text.empty()) os << " (default " << f.default_text << ")";
    os << "\n";
  }
  return os.str();
}

}  // namespace qwen3vl::bench
