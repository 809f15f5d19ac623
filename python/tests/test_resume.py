"""Resume after a reset connection (protocol.md §12.2): a TCP proxy between the Python peer and
the C++ hub drops every connection with RST; the peer reconnects through it and resumes."""

import socket
import struct
import threading

import zchan
from conftest import WAIT, binary


class ResettingProxy:
    """Forwards 127.0.0.1:port to the hub; ``reset()`` kills every connection with an RST."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass

    def reset(self) -> None:
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def close(self) -> None:
        self.lsock.close()
        self.reset()


def test_sends_and_receives_survive_a_reset(hub, spawn):
    # A long session timeout: a reset must be resumed, not outlived, on a loaded machine too.
    _, ep = hub("--channel", "q:1000:string", "--heartbeat-timeout", "15000")
    proxy = ResettingProxy(int(ep.rsplit(":", 1)[1]))
    try:
        with zchan.dial(f"tcp://127.0.0.1:{proxy.port}", "q", zchan.String) as ch:
            for i in range(20):
                ch << f"a{i}"
            proxy.reset()
            for i in range(20):
                ch.send(f"b{i}", timeout=WAIT)  # the first waits for the resume
            assert len(ch) == 40
            got = [ch.recv(timeout=WAIT) for _ in range(10)]
            proxy.reset()
            got += [ch.recv(timeout=WAIT) for _ in range(30)]
            assert got == [f"a{i}" for i in range(20)] + [f"b{i}" for i in range(20)]
            # A receive blocked across a reset gets the value sent after it.
            out = []
            t = threading.Thread(target=lambda: out.append(ch.recv(timeout=WAIT)))
            t.start()
            proxy.reset()
            s = spawn([binary("tools/zchan/zchan"), "send", ep, "q"], stdin=True)
            s.p.stdin.write("after\n")
            s.p.stdin.close()
            assert s.wait() == 0
            t.join(WAIT)
            assert out == ["after"]
            assert len(ch) == 0  # nothing duplicated
            assert ch.engine.resumes == 3
    finally:
        proxy.close()


def test_prefetching_receiver_survives_a_reset(hub, spawn):
    # A long session timeout: a reset must be resumed, not outlived, on a loaded machine too.
    _, ep = hub("--channel", "q:1000:string", "--heartbeat-timeout", "15000")
    proxy = ResettingProxy(int(ep.rsplit(":", 1)[1]))
    try:
        with zchan.dial(ep, "q", zchan.String) as producer:
            for i in range(300):
                producer << f"v{i}"
            producer.close()
        with zchan.dial(f"tcp://127.0.0.1:{proxy.port}", "q", zchan.String, prefetch=50) as ch:
            got = [ch.recv(timeout=WAIT) for _ in range(100)]
            proxy.reset()
            got += list(ch)
            assert ch.engine.resumes == 1
        assert got == [f"v{i}" for i in range(300)]
    finally:
        proxy.close()
