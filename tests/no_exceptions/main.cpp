// Built with -fno-exceptions (tests/CMakeLists.txt): xloss computes as usual, and an error prints
// the message the exception would carry and aborts. The error path runs in a child process (a death
// test): the parent checks the child's signal and what it wrote to stderr.

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <xloss/xloss.hpp>

namespace
{
    /// Runs f in a child process; returns its stderr, and whether it ended by SIGABRT.
    template <class F>
    std::string run_child(F f, bool& aborted)
    {
        int fds[2];
        if (pipe(fds) != 0)
        {
            std::perror("pipe");
            std::exit(2);
        }
        const pid_t pid = fork();
        if (pid == 0)
        {
            dup2(fds[1], STDERR_FILENO);
            close(fds[0]);
            f();
            std::_Exit(0); // f was meant to abort
        }
        close(fds[1]);
        std::string err;
        char buf[256];
        for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) > 0;)
        {
            err.append(buf, static_cast<std::size_t>(n));
        }
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
        return err;
    }
}

int main()
{
    const xt::xarray<float> x = {{-1.f, -2.f, -0.5f}, {-0.1f, -3.f, -1.f}};
    const xt::xarray<float> t = {{0.5f, 0.25f, 0.25f}, {0.f, 0.5f, 0.5f}};
    const float loss = xloss::kl_div(x, t, xloss::reduction::sum)();
    const float expected = 0.5f * (std::log(0.5f) + 1.f) + 0.25f * (std::log(0.25f) + 2.f)
                           + 0.25f * (std::log(0.25f) + 0.5f) + 0.5f * (std::log(0.5f) + 3.f)
                           + 0.5f * (std::log(0.5f) + 1.f);
    const bool value_ok = std::abs(loss - expected) <= 1e-6f * std::abs(expected);

    bool aborted = false;
    const std::string err = run_child(
        [&]
        {
            const xt::xarray<float> t4 = {0.25f, 0.25f, 0.25f, 0.25f};
            (void)xloss::kl_div(x, t4, xloss::reduction::sum);
        },
        aborted);
    const std::string message = "xloss::kl_div: input of shape (2, 3) and target of shape (4) cannot be broadcast "
                                "together\n";
    const bool error_ok = aborted && err == message;
    std::printf("loss %.7g (expected %.7g); error path: %s, stderr: %s", loss, expected,
                aborted ? "aborted" : "did not abort", err.c_str());
    std::printf("%s\n", value_ok && error_ok ? "no-exceptions build ok" : "no-exceptions build FAILED");
    return value_ok && error_ok ? 0 : 1;
}
