"""Patient matching (`Patient/$match`): pure scoring in `score`, candidate search in
`candidates`."""
