// go_log.hpp: Go's log.Println for the multi-process examples, and a tiny
// option parser they share. Not part of zchan.
//
// log_println("Sent", 3) prints "2006/01/02 15:04:05 Sent 3" on stdout and
// flushes, so a parent process reading the pipe sees each line at once.
// (Go logs to stderr; stdout pipes more easily.)
//
// Thread safety: log_println may be called from any thread; lines stay whole.
#pragma once

#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

namespace go_log {

inline std::mutex& log_mutex() {
    static std::mutex m;
    return m;
}

template <class... Args>
void log_println(const Args&... args) {
    std::ostringstream line;
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &local);
    line << stamp;
    ((line << ' ' << args), ...);
    const std::lock_guard<std::mutex> lock(log_mutex());
    std::cout << line.str() << std::endl;  // flush each line, as Go's unbuffered logger does
}

}  // namespace go_log
