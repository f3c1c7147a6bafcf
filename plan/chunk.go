package plan

// Chunk is a byte range of a file.
type Chunk struct {
	Index int64
	Off   int64
	Len   int64
}

// Chunks cuts a file of size bytes into chunkSize pieces. An empty file has
// one empty chunk, so that every file is carried by at least one message.
func Chunks(size, chunkSize int64) []Chunk {
	if size == 0 {
		return []Chunk{{}}
	}
	n := (size + chunkSize - 1) / chunkSize
	out := make([]Chunk, 0, n)
	for i := int64(0); i < n; i++ {
		off := i * chunkSize
		l := chunkSize
		if off+l > size {
			l = size - off
		}
		out = append(out, Chunk{Index: i, Off: off, Len: l})
	}
	return out
}
