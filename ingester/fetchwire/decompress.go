package fetchwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/snappy"
	"github.com/segmentio/kafka-go/compress"
)

// maxDecompressed bounds what the compressed batches of one response may grow to, in all
// (a variable for the tests).
var maxDecompressed = 256 << 20

var errTooLarge = errors.New("decompressed past the bound")

// decompress appends what data decompresses to with codec to scratch, which may hold
// at most maxDecompressed bytes in all. Snappy is decoded here, not through kafka-go's
// reader, which allocates what a batch's few bytes declare (a chunk of 4 GB) before any
// of it is checked; the other codecs' readers are read into the bound.
func decompress(scratch []byte, codec compress.Compression, data []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case compress.Snappy:
		out, err = decompressSnappy(scratch, data)
	default:
		out, err = decompressStream(scratch, codec, data)
	}
	// On an error the bytes before are kept: in out's array when it grew, else in
	// scratch's (a decoder may return nil).
	if err != nil && len(out) < len(scratch) {
		out = scratch
	}
	if errors.Is(err, errTooLarge) {
		return out[:len(scratch)], fmt.Errorf("decompressed past %d bytes", maxDecompressed)
	}
	if err != nil {
		return out[:len(scratch)], fmt.Errorf("decompressing with %s: %w", codec, err)
	}
	return out, nil
}

// decompressStream reads codec's reader of data into scratch, until scratch holds more
// than maxDecompressed bytes (errTooLarge).
func decompressStream(scratch []byte, codec compress.Compression, data []byte) ([]byte, error) {
	c := codec.Codec()
	if c == nil {
		return scratch, fmt.Errorf("unknown compression codec %d", codec)
	}
	r := c.NewReader(bytes.NewReader(data))
	defer r.Close()
	for {
		if len(scratch) == cap(scratch) {
			scratch = slices.Grow(scratch, max(len(data), 4<<10))
		}
		n, err := r.Read(scratch[len(scratch):cap(scratch)])
		scratch = scratch[:len(scratch)+n]
		if len(scratch) > maxDecompressed {
			return scratch, errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return scratch, nil
		}
		if err != nil {
			return scratch, err
		}
	}
}

// xerialMagic begins snappy data in the framing of Java's xerial library (what Kafka's
// own clients write): a header of 16 bytes, then blocks, each after its length (int32).
// Without it the data is one snappy block (librdkafka's).
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderSize = 16

func decompressSnappy(scratch, data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, xerialMagic) || len(data) < xerialHeaderSize {
		return appendSnappyBlock(scratch, data)
	}
	var err error
	for data = data[xerialHeaderSize:]; len(data) > 0; {
		if len(data) < 4 {
			return scratch, fmt.Errorf("a chunk's length cut short")
		}
		size := binary.BigEndian.Uint32(data)
		if uint64(size) > uint64(len(data)-4) {
			return scratch, fmt.Errorf("a chunk of %d bytes where %d are left", size, len(data)-4)
		}
		if scratch, err = appendSnappyBlock(scratch, data[4:4+size]); err != nil {
			return scratch, err
		}
		data = data[4+size:]
	}
	return scratch, nil
}

// appendSnappyBlock decodes one snappy block after scratch, once its declared length is
// known to fit the bound.
func appendSnappyBlock(scratch, block []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return scratch, err
	}
	if n > maxDecompressed-len(scratch) {
		return scratch, errTooLarge
	}
	scratch = slices.Grow(scratch, n)
	out, err := snappy.Decode(scratch[len(scratch):len(scratch)+n], block)
	if err != nil {
		return scratch, err
	}
	return scratch[:len(scratch)+len(out)], nil
}
