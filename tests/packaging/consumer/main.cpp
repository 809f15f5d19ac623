// Packaging test consumer: only checks that an installed zchan compiles, links and works.
#include <iostream>
#include <optional>

#include <zchan/zchan.hpp>

int main() {
    zchan::channel<int> ch(1);
    ch.send(42);
    const std::optional<int> got = ch.recv();
    if (!got) {
        std::cerr << "consumer: recv() returned nullopt\n";
        return 1;
    }
    std::cout << *got << '\n';
    return *got == 42 ? 0 : 1;
}
