G0 (comment) X5 ; rest
N10 g1 x1 f200
