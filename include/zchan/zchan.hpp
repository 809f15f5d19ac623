// zchan: Go channels for C++, in one process and across processes.
// Include this header for everything.
#pragma once

#include "zchan/channel.hpp"
#include "zchan/errors.hpp"
#include "zchan/select.hpp"
#include "zchan/status.hpp"
