-- Finish successful tasks (see complete_from). ARGV: prefix, queue, n, ids, m, lock pairs.
complete_from(2)
settle_names()
return 1
