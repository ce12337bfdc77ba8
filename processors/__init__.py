"""Pure, deterministic, engine-free logic. No I/O, no Kafka, no clock.

Everything here is a function of its arguments, so `gatewatch replay` and the
streaming workers give byte-identical output.
"""
