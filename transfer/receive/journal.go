package receive

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"

	"github.com/xfer-io/xfer/transfer/wire"

	"golang.org/x/sys/unix"

	"github.com/xfer-io/xfer/internal/fsroot"
	"github.com/xfer-io/xfer/internal/hashtree"
	"github.com/xfer-io/xfer/plan"
)

// Partial files and journals.
//
// A large file is written into a partial file beside its target named
// .xfer-<16 random hex digits>.part, created exclusively (O_EXCL, never
// through a symlink): nobody can plant a name that it will write through.
// Its journal, .xfer-<16 hex digits of the BLAKE3 of the target's
// name>.journal, is deterministic so that a later run finds it; it names
// the partial file and lists the chunks written and verified. It names
// the partial file before the file is made, so a run killed at any moment
// leaves no partial file that the next run cannot find. The journal
// is opened never through a symlink, and only if it is a regular file of
// this process's user with no other link (anything else at its name is
// removed and the journal made anew); its lock keeps a second writer of
// the same file away. Only the partial file of a file split over the
// shares of a cluster transfer has a deterministic name (of the same
// shape), since shares on several hosts write into it side by side; it is
// opened with the same checks as a journal.

// journalVersion is the version of the journal format.
const journalVersion = 2

// journalHeader identifies the transfer a partial file belongs to; a
// partial file is resumed only by a transfer of the same source version.
type journalHeader struct {
	V int `json:"v"`
	// Name is the target's base name; Part the partial file's, in the
	// same directory.
	Name    string `json:"name"`
	Part    string `json:"part"`
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime"`
	Chunk   int64  `json:"chunk"`
	Mode    uint32 `json:"mode"`
	// Digests: each record carries the chunk's digest after its index (a
	// share of a split file), for the final pass to take without reading
	// the data again once the share has parked.
	Digests bool `json:"digests,omitempty"`
}

// parkMark, as the last record of a share's journal, says the share
// flushed its chunks and the journal: the final pass may trust the
// digests recorded before it.
const parkMark = ^uint64(0)

// maxJournalHeader bounds the header line of a journal.
const maxJournalHeader = 4096

// journalRec is one record of a journal: a chunk written and verified,
// with its digest in a share's journal.
type journalRec struct {
	idx int64
	dg  hashtree.Digest
}

// sameTransfer reports whether a journal with header h belongs to a
// transfer described by want (the partial file's name aside).
func (h journalHeader) sameTransfer(want journalHeader) bool {
	h.Part = want.Part
	return h == want
}

func (h journalHeader) recSize() int {
	if h.Digests {
		return 8 + len(hashtree.Digest{})
	}
	return 8
}

func (h journalHeader) encode() []byte {
	line, _ := json.Marshal(h)
	return append(line, '\n')
}

// validName reports whether name is a single path component.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// decodeJournal reads a journal: its header line, then fixed-size
// records, up to a torn record at the tail. It returns the header, the
// records (one per chunk index, the last one read winning), the length of
// the journal up to its last whole record that is not a park mark (where
// appending resumes), and whether the last whole record is the park mark.
// A header that is not a valid journal header of this version is an
// error. Reading stops after twice as many records as the file has
// chunks, so a journal never costs more memory than its file's chunk
// count warrants.
func decodeJournal(r io.Reader) (hdr journalHeader, recs []journalRec, keep int64, parked bool, err error) {
	br := bufio.NewReaderSize(r, maxJournalHeader)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return hdr, nil, 0, false, errors.New("journal has no header line")
	}
	if err := json.Unmarshal(line, &hdr); err != nil {
		return hdr, nil, 0, false, errors.New("journal header is not JSON")
	}
	switch {
	case hdr.V != journalVersion:
		err = fmt.Errorf("journal version %d", hdr.V)
	case !validName(hdr.Name):
		err = errors.New("journal names no target")
	case !plan.IsTempName(hdr.Part, ".part"):
		err = errors.New("journal names no partial file")
	case hdr.Size < 0 || hdr.Mode > 0o7777:
		err = errors.New("journal header out of range")
	case hashtree.ValidChunkSize(hdr.Chunk) != nil || hdr.Chunk > wire.MaxChunkSize:
		err = errors.New("journal chunk size out of range")
	}
	if err != nil {
		return hdr, nil, 0, false, err
	}
	keep = int64(len(line))
	n := hashtree.NumChunks(hdr.Size, hdr.Chunk)
	size := hdr.recSize()
	at := map[int64]int{} // chunk index -> position in recs
	var rec [8 + len(hashtree.Digest{})]byte
	off := keep
	for reads := int64(0); reads < 2*n+2; reads++ {
		if _, err := io.ReadFull(br, rec[:size]); err != nil {
			break // the end, or a torn record
		}
		off += int64(size)
		raw := binary.LittleEndian.Uint64(rec[:8])
		if raw == parkMark {
			parked = true
			continue
		}
		parked = false
		keep = off
		idx := int64(raw)
		if idx < 0 || idx >= n {
			continue
		}
		jr := journalRec{idx: idx}
		copy(jr.dg[:], rec[8:size])
		if i, dup := at[idx]; dup {
			recs[i] = jr
			continue
		}
		at[idx] = len(recs)
		recs = append(recs, jr)
	}
	return hdr, recs, keep, parked, nil
}

// appendRecord appends one journal record for chunk idx to b.
func appendRecord(b []byte, idx uint64, dg hashtree.Digest, digests bool) []byte {
	b = binary.LittleEndian.AppendUint64(b, idx)
	if digests {
		b = append(b, dg[:]...)
	}
	return b
}

// hashedName is the name, beside target p, of one of xfer's files that a
// later run or another share must find again: 16 hex digits of the
// BLAKE3 of the target's base name and what the file is for.
func hashedName(p, what, suffix string) string {
	sum := hashtree.Sum([]byte(plan.Base(p) + "\x00" + what))
	return plan.Join(plan.Dir(p), plan.TempPrefix+hex.EncodeToString(sum[:plan.TempHexLen/2])+suffix)
}

// journalName is the journal of target path p.
func journalName(p string) string { return hashedName(p, "journal", ".journal") }

// shareJournalName is the journal of share k of the split file p.
func ShareJournalName(p string, k int) string {
	return hashedName(p, fmt.Sprintf("share %d", k), ".journal")
}

// splitPartName is the partial file that the shares of a split file p
// write side by side.
func SplitPartName(p string) string { return hashedName(p, "split", ".part") }

// randomPartName is a fresh, unpredictable name for a partial file (or a
// symlink or link being made) beside target p.
func randomPartName(p string) string {
	var b [plan.TempHexLen / 2]byte
	rand.Read(b[:])
	return plan.Join(plan.Dir(p), plan.TempPrefix+hex.EncodeToString(b[:])+".part")
}

// partAttempts bounds the tries at a fresh name that is already taken.
const partAttempts = 8

// createPart creates a partial file for target p under a fresh random
// name, exclusively (O_EXCL; never through a symlink). Its journal j is
// started afresh with hdr naming the partial file before the file is
// made: a run killed at any moment leaves no partial file that its
// journal does not name, so the next run of p removes or resumes it.
func (r *Receiver) createPart(p string, j *os.File, hdr journalHeader) (*os.File, string, error) {
	var f *os.File
	name, err := freshName(p, func(name string) (err error) {
		hdr.Part = plan.Base(name)
		if err := writeHeader(j, hdr); err != nil {
			return err
		}
		f, err = r.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return f, name, nil
}

// errNotOurs refuses a file at one of xfer's own names that xfer did not
// make: not a regular file, owned by another user, or with more than one
// link (a hard link planted there could lead outside the tree).
var errNotOurs = errors.New("not a file of this transfer (another owner, a special file, or a hard link); refused")

// ours reports whether info is a file xfer may take as its own: a regular
// file of this process's user with no other link.
func ours(info fsroot.Info) bool {
	return info.Type == fsroot.TypeFile && info.Nlink == 1 && int(info.Uid) == os.Geteuid()
}

// openOwn opens one of xfer's own files, name, with flag (no O_CREATE),
// never through a symlink, and only if it is ours.
func (r *Receiver) openOwn(name string, flag int) (*os.File, error) {
	f, err := r.root.OpenFile(name, flag, 0)
	if err != nil {
		return nil, err
	}
	info, err := fsroot.InfoFromFile(f)
	if err == nil && !ours(info) {
		err = errNotOurs
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// errBusy: another transfer holds the lock of a file.
var errBusy = errors.New("another transfer is writing this file")

// openLocked opens, creating it if need be, one of xfer's own files,
// name, for reading and writing, and locks it (flock how: LOCK_EX or
// LOCK_SH) without waiting; errBusy if another transfer holds it.
// Anything at name that is not ours (a symlink, a special file, a hard
// link, another user's file) is removed, not written, and the file made
// anew. A lock on a file that lost its name meanwhile (its holder
// removed it when done) is given up and taken again on the new one.
func (r *Receiver) openLocked(name string, how int) (*os.File, error) {
	err := errNotOurs
	for range partAttempts {
		var f *os.File
		f, err = r.root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if errors.Is(err, unix.ELOOP) {
			r.root.Remove(name) // a symlink: xfer never makes one there
			continue
		}
		if err != nil {
			return nil, err
		}
		info, ierr := fsroot.InfoFromFile(f)
		if ierr != nil {
			f.Close()
			return nil, ierr
		}
		if !ours(info) {
			f.Close()
			r.root.Remove(name) // unlinks the planted name only
			err = errNotOurs
			continue
		}
		if unix.Flock(int(f.Fd()), how|unix.LOCK_NB) != nil {
			f.Close()
			return nil, errBusy
		}
		now, lerr := r.root.Lstat(name)
		if lerr != nil || now.Ino != info.Ino || now.Dev != info.Dev {
			f.Close()
			err = errBusy
			continue
		}
		return f, nil
	}
	return nil, err
}

// readJournal reads journal j, named jname: the records of a
// journal of the transfer hdr describes, whose partial file part names,
// the length up to which to keep it, and whether it ends with a park
// mark. ok is false when j belongs to another transfer or is not a
// journal; part is then whatever partial file it named, if any.
func (r *Receiver) readJournal(j *os.File, jname string, hdr journalHeader) (recs []journalRec, part string, keep int64, parked, ok bool) {
	if _, err := j.Seek(0, io.SeekStart); err != nil {
		return nil, "", 0, false, false
	}
	got, recs, keep, parked, err := decodeJournal(j)
	if err != nil {
		return nil, "", 0, false, false
	}
	part = plan.Join(plan.Dir(jname), got.Part)
	if !got.sameTransfer(hdr) {
		return nil, part, 0, false, false
	}
	return recs, part, keep, parked, true
}

// writeHeader starts journal j afresh with header hdr.
func writeHeader(j *os.File, hdr journalHeader) error {
	if err := j.Truncate(0); err != nil {
		return err
	}
	if _, err := j.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := j.Write(hdr.encode())
	return err
}

// freshName makes something new beside target p under a fresh random
// partial name: make is called with candidate names until one is not
// taken (make fails with EEXIST on a taken one).
func freshName(p string, make func(name string) error) (string, error) {
	var err error
	for range partAttempts {
		name := randomPartName(p)
		if err = make(name); !errors.Is(err, unix.EEXIST) {
			return name, err
		}
	}
	return "", err
}

// legacyNames are the names that xfer before protocol version 2 gave the
// partial file and journals of target p (FNV-64a of the base name), left
// by a transfer it did not finish. They are unlinked, never opened, when
// p is written again, so an upgrade leaves no hidden data behind.
func legacyNames(p string, shares int) []string {
	h := fnv.New64a()
	h.Write([]byte(plan.Base(p)))
	stem := plan.Join(plan.Dir(p), fmt.Sprintf("%s%016x", plan.TempPrefix, h.Sum64()))
	names := []string{stem + ".part", stem + ".journal"}
	for k := range shares {
		names = append(names, fmt.Sprintf("%s.s%d.journal", stem, k))
	}
	return names
}
