package wire

import (
	"fmt"
	"strings"

	"github.com/xfer-io/xfer/internal/fsroot"
)

// OpXattrs makes the extended attributes (and POSIX ACLs) of destination
// entries match the source's: Req.Xattrs lists each entry's full set
// within Req.XattrScope; Resp.XattrResults answers per entry.
const OpXattrs = "xattrs"

// XattrScope says which extended attributes a run keeps (-X, -A): the
// receiver makes those match and leaves all others alone.
type XattrScope struct {
	// Xattrs: user.* attributes, and trusted.* and security.* where the
	// receiver runs as root (rsync -X).
	Xattrs bool `json:"xattrs,omitempty"`
	// ACLs: system.posix_acl_access and system.posix_acl_default (rsync -A).
	ACLs bool `json:"acls,omitempty"`
}

// POSIX ACLs as Linux stores them: the binary value of these attributes.
const (
	ACLAccess  = "system.posix_acl_access"
	ACLDefault = "system.posix_acl_default"
)

// Keeps reports whether name is in the scope, for a process that is
// privileged (root) or not.
func (sc XattrScope) Keeps(name string, privileged bool) bool {
	switch {
	case name == ACLAccess || name == ACLDefault:
		return sc.ACLs
	case strings.HasPrefix(name, "user."):
		return sc.Xattrs
	case strings.HasPrefix(name, "trusted."), strings.HasPrefix(name, "security."):
		return sc.Xattrs && privileged
	}
	return false
}

// Any reports whether the scope keeps anything.
func (sc XattrScope) Any() bool { return sc.Xattrs || sc.ACLs }

// XattrSupport is what one side of a session can store of extended
// attributes where it receives files, said in the handshake (Hello and
// Welcome): a sender leaves out what the other side cannot keep, and says
// so once.
type XattrSupport struct {
	// User: the file system takes user.* attributes.
	User bool `json:"user"`
	// ACLs: the file system takes POSIX ACLs.
	ACLs bool `json:"acls"`
	// Privileged: the receiver runs as root, so trusted.* and security.*
	// attributes are kept too.
	Privileged bool `json:"privileged"`
}

// Xattr is one extended attribute of an entry.
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// XattrSet is the whole set of an entry's attributes within the scope.
type XattrSet struct {
	Path  string  `json:"path"`
	Attrs []Xattr `json:"attrs,omitempty"`
}

// XattrResult answers one XattrSet.
type XattrResult struct {
	// Changed: the destination's attributes differed and were made to match.
	Changed bool `json:"changed,omitempty"`
	// Err says why the entry could not be handled at all ("" for done).
	Err string `json:"err,omitempty"`
	// NotKept names attributes the destination could not store or
	// remove, and NotKeptWhy why (the first reason).
	NotKept    []string `json:"not_kept,omitempty"`
	NotKeptWhy string   `json:"not_kept_why,omitempty"`
}

// Bounds of an OpXattrs request: entries per request, and bytes of names
// and values per entry (above it the sender skips the entry's attributes,
// and says so).
const (
	MaxXattrSets     = 256
	MaxXattrSetBytes = 1 << 20
	maxXattrsPerSet  = 4096
)

// Validate checks what a hostile peer could get wrong in sets.
func ValidateXattrSets(sets []XattrSet) error {
	if len(sets) > MaxXattrSets {
		return fmt.Errorf("%d attribute sets in one request (at most %d)", len(sets), MaxXattrSets)
	}
	for _, s := range sets {
		if err := ValidRel(s.Path); err != nil {
			return err
		}
		if len(s.Attrs) > maxXattrsPerSet {
			return fmt.Errorf("%s: %d extended attributes (at most %d)", s.Path, len(s.Attrs), maxXattrsPerSet)
		}
		total := 0
		for _, a := range s.Attrs {
			if a.Name == "" || len(a.Name) > fsroot.MaxXattrName || strings.IndexByte(a.Name, 0) >= 0 {
				return fmt.Errorf("%s: invalid extended attribute name %q", s.Path, a.Name)
			}
			if len(a.Value) > fsroot.MaxXattrValue {
				return fmt.Errorf("%s: extended attribute %s has %d bytes (at most %d)", s.Path, a.Name, len(a.Value), fsroot.MaxXattrValue)
			}
			total += len(a.Name) + len(a.Value)
		}
		if total > MaxXattrSetBytes {
			return fmt.Errorf("%s: extended attributes of %d bytes (at most %d)", s.Path, total, MaxXattrSetBytes)
		}
	}
	return nil
}
