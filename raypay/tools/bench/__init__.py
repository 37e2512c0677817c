"""``raypay bench``: raypay and a peer without Ray, same scenario, same machine.

cli.py     the command's options
run.py     the run: each side started, warmed up, loaded, measured, stopped; the lines
sides.py   the two systems: `raypay up` as a child; redis + Tansu + uvicorn for the peer
peer.py    the peer: FastAPI + uvicorn workers over raypay's own domain and adapters
procs.py   process trees and their memory (PSS) from /proc
"""
