# ruff: noqa
# fmt: off
"""Seed 004's echo client exactly as the seed documents it (tinyproto 2.x README)."""

from tinyproto import TinyProtoClient, TinyProtoConnection

HOST='127.0.0.1'
PORT=9123

class EchoClientConnection(TinyProtoConnection):
    def transmission_received(self, msg):
        print('Response from server: {0}'.format(msg.decode()))

    def loop_pass(self):
        pass

if __name__ == '__main__':
    echo_client = TinyProtoClient()
    echo_client.set_conn_handler(EchoClientConnection)
    echo_client.connect_to(HOST,PORT)

    should_quit=False
    while not should_quit:
        msg = input('')
        if msg in ('QUIT', 'SRVQUIT'):
            should_quit = True
        echo_client.active_connections[0].transmit(msg.encode())
    echo_client.active_connections[0].shutdown = True
