"""DATA: struct-of-arrays pytrees describing what agents, symbols, orders and books are."""
