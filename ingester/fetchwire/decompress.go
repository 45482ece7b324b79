package fetchwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go/compress"
)

// maxDecompressed bounds what the compressed batches of one response may grow to, in all
// (a variable for the tests).
var maxDecompressed = 256 << 20

var errTooLarge = errors.New("decompressed past the bound")

// decompress appends what data decompresses to with codec to scratch, which may hold
// at most maxDecompressed bytes in all. Snappy and zstd are decoded here, not through
// kafka-go's readers, because those allocate what a batch's few bytes declare (a
// snappy chunk of 4 GB, a zstd window of 512 MB) before any of it is checked.
func decompress(scratch []byte, codec compress.Compression, data []byte) ([]byte, error) {
	start := len(scratch)
	var err error
	switch codec {
	case compress.Snappy:
		scratch, err = decompressSnappy(scratch, data)
	case compress.Zstd:
		scratch, err = decompressZstd(scratch, data)
	default:
		scratch, err = decompressStream(scratch, codec, data)
	}
	if errors.Is(err, errTooLarge) {
		return scratch[:start], fmt.Errorf("decompressed past %d bytes", maxDecompressed)
	}
	if err != nil {
		return scratch[:start], fmt.Errorf("decompressing with %s: %w", codec, err)
	}
	return scratch, nil
}

// decompressStream reads codec's reader of data into scratch.
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

// zstdDecoders decode whole frames (DecodeAll: no window apart from the output, no
// goroutines), each call's output bounded by maxDecompressed; the total is checked after.
var zstdDecoders sync.Pool

// boundedZstd is a decoder and the bound it was made with.
type boundedZstd struct {
	*zstd.Decoder
	bound int
}

func decompressZstd(scratch, data []byte) ([]byte, error) {
	d, _ := zstdDecoders.Get().(boundedZstd)
	if d.Decoder == nil || d.bound != maxDecompressed {
		var err error
		if d.Decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(maxDecompressed))); err != nil {
			return scratch, err
		}
		d.bound = maxDecompressed
	}
	defer zstdDecoders.Put(d)
	scratch, err := d.DecodeAll(data, scratch)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || len(scratch) > maxDecompressed {
		return scratch, errTooLarge
	}
	return scratch, err
}
