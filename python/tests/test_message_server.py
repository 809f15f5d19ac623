"""The seed's message server (C++, examples/message_server) with a Python client
(examples/python/message_client.py): subscribe, publish, receive, both directions."""

from conftest import ROOT, binary, python_argv

CLIENT = ROOT / "examples" / "python" / "message_client.py"


def _server(spawn):
    srv = spawn([binary("examples/message_server/server"), "--clients", "2"])
    return srv, srv.until("listening on").split()[-1]


def _python_client(spawn, ep, *args):
    return spawn(python_argv(CLIENT, ep, "--zchan", binary("tools/zchan/zchan"), *args))


def test_python_subscriber_cpp_publisher(spawn):
    srv, ep = _server(spawn)
    sub = _python_client(spawn, ep, "--name", "py", "--subscribe", "news", "--expect", "3")
    sub.until("Subscribed to news")
    pub = spawn([binary("examples/message_server/client"), ep, "--name", "cpp",
                 "--publish", "news", "--count", "3"])
    assert pub.wait() == 0
    assert sub.wait() == 0
    got = [ln.split(" ", 2)[2] for ln in sub.output() if " Received " in ln]
    assert got == [f"Received news from cpp: news message {i}" for i in (1, 2, 3)]
    assert srv.wait() == 0


def test_cpp_subscriber_python_publisher(spawn):
    srv, ep = _server(spawn)
    sub = spawn([binary("examples/message_server/client"), ep, "--name", "cpp",
                 "--subscribe", "news", "--expect", "3"])
    sub.until("Subscribed to news")
    pub = _python_client(spawn, ep, "--name", "py", "--publish", "news", "--count", "3")
    assert pub.wait() == 0
    assert sub.wait() == 0
    got = [ln.split(" ", 2)[2] for ln in sub.output() if " Received " in ln]
    assert got == [f"Received news from py: news message {i}" for i in (1, 2, 3)]
    assert srv.wait() == 0
