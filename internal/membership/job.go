package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// JobTTL is how long the record of an unfinished job stays in etcd: a
// rerun within it continues the job.
const JobTTL = 7 * 24 * time.Hour

// DefaultDoneTTL is how long the record of a finished job stays.
const DefaultDoneTTL = 10 * time.Minute

// LockTTL is the lease of a destination lock: a lock whose holder died is
// released this long after.
const LockTTL = 10 * time.Second

// ErrLocked is wrapped by Lock's error when another run holds the lock.
var ErrLocked = errors.New("destination locked")

// JobInfo is the value of a job's key (JSON; see docs/etcd.md).
type JobInfo struct {
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Shares int    `json:"shares"`
	// Units and Cut, for a transfer whose walk is distributed: how many
	// subtrees it was cut into, and a digest of the cut (the directories
	// expanded and the subtrees), so that a rerun that cuts the tree
	// otherwise starts afresh instead of skipping other subtrees.
	Units   int       `json:"units,omitempty"`
	Cut     string    `json:"cut,omitempty"`
	Started time.Time `json:"started"`
	State   string    `json:"state"` // "running" or "done"
}

// ShareInfo is the value of a finished share's key.
type ShareInfo struct {
	Files    int64     `json:"files"`
	Bytes    int64     `json:"bytes"`
	Finished time.Time `json:"finished"`
}

func jobKey(cluster, id string) string { return Prefix(cluster) + "jobs/" + id }
func shareKey(job string, k int) string {
	return fmt.Sprintf("%s/shares/%04d", job, k)
}

func unitKey(job string, k int) string {
	return fmt.Sprintf("%s/units/%04d", job, k)
}

// Plan is what a run of a job would do: its shares, and for a
// distributed walk its units and the digest of its cut.
type Plan struct {
	Shares, Units int
	Cut           string
}

// Progress is what an earlier run of a job finished: its shares (by
// index) and its units.
type Progress struct {
	Shares, Units map[int]ShareInfo
}

// Job is the record of one cluster transfer in etcd.
type Job struct {
	c    *Client
	key  string
	info JobInfo
}

// OpenJob opens the record of job id (from src to dst): that of an
// unfinished earlier run with the same cut (p.Cut, p.Units), whose share
// count and finished shares and units it returns, or a new one of p. The
// record is kept under a lease of JobTTL.
func (c *Client) OpenJob(ctx context.Context, id, src, dst string, p Plan) (*Job, int, Progress, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	j := &Job{c: c, key: jobKey(c.cfg.Cluster, id)}
	resp, err := c.cli.Get(ctx, j.key, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, Progress{}, fmt.Errorf("reading job %s (%s): %w", id, c.where(), reason(err))
	}
	done := Progress{Shares: map[int]ShareInfo{}, Units: map[int]ShareInfo{}}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == j.key:
			if json.Unmarshal(kv.Value, &j.info) != nil {
				j.info = JobInfo{}
			}
		default:
			j.collect(done, k, kv.Value)
		}
	}
	if j.info.State != "running" || j.info.Shares+j.info.Units < 1 || j.info.Cut != p.Cut || j.info.Units != p.Units {
		// New, finished, or cut otherwise: start afresh.
		if _, err := c.cli.Delete(ctx, j.key, clientv3.WithPrefix()); err != nil {
			return nil, 0, Progress{}, fmt.Errorf("starting job %s (%s): %w", id, c.where(), reason(err))
		}
		j.info = JobInfo{Src: src, Dst: dst, Shares: p.Shares, Units: p.Units, Cut: p.Cut, Started: time.Now().UTC(), State: "running"}
		done = Progress{Shares: map[int]ShareInfo{}, Units: map[int]ShareInfo{}}
	}
	for k := range done.Shares {
		if k >= j.info.Shares {
			delete(done.Shares, k)
		}
	}
	for k := range done.Units {
		if k >= j.info.Units {
			delete(done.Units, k)
		}
	}
	if err := j.put(ctx, JobTTL, done); err != nil {
		return nil, 0, Progress{}, err
	}
	return j, j.info.Shares, done, nil
}

// collect adds the finished share or unit of key k to done, unless the
// key or its value is not one.
func (j *Job) collect(done Progress, k string, v []byte) {
	m := done.Shares
	switch {
	case strings.HasPrefix(k, j.key+"/shares/"):
		k = strings.TrimPrefix(k, j.key+"/shares/")
	case strings.HasPrefix(k, j.key+"/units/"):
		m, k = done.Units, strings.TrimPrefix(k, j.key+"/units/")
	default:
		return
	}
	i, err := strconv.Atoi(k)
	var s ShareInfo
	if err == nil && json.Unmarshal(v, &s) == nil {
		m[i] = s
	}
}

// put writes the job's key and those of its finished shares under a new
// lease of ttl.
func (j *Job) put(ctx context.Context, ttl time.Duration, done Progress) error {
	lease, err := j.c.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("recording job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	v, _ := json.Marshal(j.info)
	ops := []clientv3.Op{clientv3.OpPut(j.key, string(v), clientv3.WithLease(lease.ID))}
	for k, s := range done.Shares {
		sv, _ := json.Marshal(s)
		ops = append(ops, clientv3.OpPut(shareKey(j.key, k), string(sv), clientv3.WithLease(lease.ID)))
	}
	for k, s := range done.Units {
		sv, _ := json.Marshal(s)
		ops = append(ops, clientv3.OpPut(unitKey(j.key, k), string(sv), clientv3.WithLease(lease.ID)))
	}
	if _, err := j.c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("recording job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	return nil
}

// ShareDone records that share k finished, having moved files and bytes.
func (j *Job) ShareDone(ctx context.Context, k int, files, bytes int64) error {
	return j.done(ctx, "share", shareKey(j.key, k), k, files, bytes)
}

// UnitDone records that unit k (a subtree of a distributed walk)
// finished, having moved files and bytes.
func (j *Job) UnitDone(ctx context.Context, k int, files, bytes int64) error {
	return j.done(ctx, "unit", unitKey(j.key, k), k, files, bytes)
}

// done records that the share or unit (what) k finished under key.
func (j *Job) done(ctx context.Context, what, key string, k int, files, bytes int64) error {
	ctx, cancel := context.WithTimeout(ctx, j.c.cfg.DialTimeout)
	defer cancel()
	resp, err := j.c.cli.Get(ctx, j.key)
	if err != nil {
		return fmt.Errorf("recording %s %d of job %s (%s): %w", what, k, j.key, j.c.where(), reason(err))
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("recording %s %d (%s): the job's record %s is gone", what, k, j.c.where(), j.key)
	}
	v, _ := json.Marshal(ShareInfo{Files: files, Bytes: bytes, Finished: time.Now().UTC()})
	if _, err := j.c.cli.Put(ctx, key, string(v), clientv3.WithLease(clientv3.LeaseID(resp.Kvs[0].Lease))); err != nil {
		return fmt.Errorf("recording %s %d of job %s (%s): %w", what, k, j.key, j.c.where(), reason(err))
	}
	return nil
}

// Finish records that the job finished; its keys expire after keep.
func (j *Job) Finish(ctx context.Context, keep time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, j.c.cfg.DialTimeout)
	defer cancel()
	resp, err := j.c.cli.Get(ctx, j.key+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("finishing job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	done := Progress{Shares: map[int]ShareInfo{}, Units: map[int]ShareInfo{}}
	for _, kv := range resp.Kvs {
		j.collect(done, string(kv.Key), kv.Value)
	}
	j.info.State = "done"
	return j.put(ctx, max(keep, time.Second), done)
}

// Lock takes the lock name of the cluster (a destination's), held by a
// lease of LockTTL that this process keeps alive: release ends it, and
// the lock ends by itself LockTTL after this process dies. The error
// wraps ErrLocked if another run holds it.
func (c *Client) Lock(ctx context.Context, name string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	s, err := concurrency.NewSession(c.cli, concurrency.WithTTL(int(LockTTL/time.Second)), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("locking %s (%s): %w", name, c.where(), reason(err))
	}
	key := Prefix(c.cfg.Cluster) + "locks/" + name
	m := concurrency.NewMutex(s, key)
	if err := m.TryLock(ctx); err != nil {
		s.Close()
		if errors.Is(err, concurrency.ErrLocked) {
			return nil, fmt.Errorf("%w: another xfer run holds its lock %s in %s; try again later or pass --lock=false", ErrLocked, key, c.where())
		}
		return nil, fmt.Errorf("locking %s (%s): %w", name, c.where(), reason(err))
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.Unlock(rctx)
		_ = s.Close()
	}, nil
}
