// zchan: Go channels for C++, in one process and across processes.
// Include this header for everything (link zchan::zchan). In-process users
// who want no ZeroMQ or cereal headers include zchan/channel.hpp and
// zchan/select.hpp and link zchan::core.
#pragma once

#include "zchan/channel.hpp"
#include "zchan/errors.hpp"
#include "zchan/hub.hpp"
#include "zchan/net.hpp"
#include "zchan/net_options.hpp"
#include "zchan/security.hpp"
#include "zchan/select.hpp"
#include "zchan/serialize.hpp"
#include "zchan/status.hpp"
