import socket, threading, sys, json
# Logs every chunk between a client and the server as JSON lines: {"dir": "c2s"|"s2c", "hex": ...}
lport, rport, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); ls.bind(("127.0.0.1", lport)); ls.listen(1)
c, _ = ls.accept(); s = socket.create_connection(("127.0.0.1", rport))
f = open(out, "w"); lock = threading.Lock()
def pump(a, b, d):
    while True:
        data = a.recv(65536)
        if not data: b.close(); return
        with lock: f.write(json.dumps({"dir": d, "hex": data.hex()}) + "\n"); f.flush()
        b.sendall(data)
t = threading.Thread(target=pump, args=(s, c, "s2c")); t.start(); pump(c, s, "c2s")
