// Regression test for the test harness (support/child_process.hpp): the
// children of a test process that dies without running child_process's
// destructor must not outlive it. They did: a parent ended by a sanitizer's
// report left its child running, holding its port and CTest's output pipe.
// Now a guardian process kills them (child_guardian).
#include <cerrno>
#include <chrono>
#include <string>

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace {

// Child role: starts a long-lived child of its own, says its pid, and is
// killed at once, so that no destructor runs.
int orphaning_parent() {
    zchan_test::child_process grandchild({"/bin/sleep", "600"});
    if (!grandchild.spawned()) return 2;
    zchan_test::say("grandchild " + std::to_string(grandchild.pid()));
    ::kill(::getpid(), SIGKILL);
    return 3;  // not reached
}

TEST(ChildGuardian, TheChildrenOfAProcessKilledBeforeItsCleanupDieWithIt) {
    zchan_test::child_process parent({zchan_test::self_exe()},
                                     {.env = {{"ZCHAN_CHILD_ROLE", "orphaning_parent"}}});
    const auto pid_text = parent.wait_for("grandchild ");
    ASSERT_TRUE(pid_text.has_value()) << parent.output();
    const pid_t grandchild = std::stoi(*pid_text);
    ASSERT_EQ(parent.wait_exit(), -SIGKILL) << parent.output();

    // The grandchild is not our child: watch its exit through a pidfd.
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0));
    if (fd < 0) {
        ASSERT_EQ(errno, ESRCH) << "pidfd_open";
        return;  // gone already
    }
    pollfd p{fd, POLLIN, 0};
    const int ms = static_cast<int>(zchan_test::generous.count());
    const int r = ::poll(&p, 1, ms);
    ::close(fd);
    if (r != 1) ::kill(grandchild, SIGKILL);  // a failed run leaves nothing behind either
    EXPECT_EQ(r, 1) << "the grandchild (pid " << grandchild << ") outlived its killed parent by "
                    << ms << " ms";
}

}  // namespace

int main(int argc, char** argv) {
    if (zchan_test::env_or("ZCHAN_CHILD_ROLE") == "orphaning_parent") return orphaning_parent();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
