"""``raypay chaos``: a paced burst against the stack `raypay up` starts, while a seeded
schedule kills and pauses its processes; then the load tool's invariants, and a few more.

    schedule.py   the seeded fault schedule (plain data, unit-tested)
    inject.py     finds each target's process (Ray's state API, the supervisor's children)
                  and signals it by PID
    run.py        the run: stack, traffic, faults, recovery, checks, the report
    cli.py        the command (``make chaos SEED=n``)
"""
