"""What readers did with what the editor sent: per-link and per-resource results, the click
map, a library that remembers what it featured, and the drafting help built on them."""
