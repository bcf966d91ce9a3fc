# ruff: noqa
# fmt: off
"""Seed 004's echo server exactly as the seed documents it (tinyproto 2.x README)."""

from tinyproto import TinyProtoServer, TinyProtoConnection
from threading import Event

HOST='127.0.0.1'
PORT=9123

class EchoConnection(TinyProtoConnection):
    def pre_loop(self):
        self.shutdown_event = Event()

    def transmission_received(self, msg):
        msg = msg.decode()
        if msg == 'QUIT':
            self.shutdown = True
        elif msg == 'SRVQUIT':
            self.shutdown_event.set()
        else:
            self.transmit('Echo back: {0}'.format(msg).encode())

class EchoServer(TinyProtoServer):
    def conn_init(self, conn_o):
        remote_details = conn_o.socket_o.getpeername()
        print('Connection opened from: {0}'.format(remote_details))

    def conn_shutdown(self, conn_o):
        print('Connection closed from: {0}'.format(conn_o.peername_details))

    def loop_pass(self):
        for c in self.active_connections:
            try:
                if c.shutdown_event.is_set():
                    self.shutdown = True
            except AttributeError as e:
                pass

if __name__ == '__main__':
    echo_server = EchoServer()
    echo_server.set_conn_handler(EchoConnection)
    echo_server.add_addr(HOST, PORT)
    echo_server.start()
