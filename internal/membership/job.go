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
	Src     string    `json:"src"`
	Dst     string    `json:"dst"`
	Shares  int       `json:"shares"`
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

// Job is the record of one cluster transfer in etcd.
type Job struct {
	c    *Client
	key  string
	info JobInfo
}

// OpenJob opens the record of job id (from src to dst): that of an
// unfinished earlier run, whose share count and finished shares it
// returns, or a new one of n shares. The record is kept under a lease of
// JobTTL.
func (c *Client) OpenJob(ctx context.Context, id, src, dst string, n int) (*Job, int, map[int]ShareInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	j := &Job{c: c, key: jobKey(c.cfg.Cluster, id)}
	resp, err := c.cli.Get(ctx, j.key, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("reading job %s (%s): %w", id, c.where(), reason(err))
	}
	done := map[int]ShareInfo{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		switch {
		case k == j.key:
			if json.Unmarshal(kv.Value, &j.info) != nil {
				j.info = JobInfo{}
			}
		case strings.HasPrefix(k, j.key+"/shares/"):
			i, err := strconv.Atoi(strings.TrimPrefix(k, j.key+"/shares/"))
			var s ShareInfo
			if err == nil && json.Unmarshal(kv.Value, &s) == nil {
				done[i] = s
			}
		}
	}
	if j.info.State != "running" || j.info.Shares < 1 {
		// New, or finished: start afresh.
		if _, err := c.cli.Delete(ctx, j.key, clientv3.WithPrefix()); err != nil {
			return nil, 0, nil, fmt.Errorf("starting job %s (%s): %w", id, c.where(), reason(err))
		}
		j.info = JobInfo{Src: src, Dst: dst, Shares: n, Started: time.Now().UTC(), State: "running"}
		done = map[int]ShareInfo{}
	}
	for k := range done {
		if k >= j.info.Shares {
			delete(done, k)
		}
	}
	if err := j.put(ctx, JobTTL, done); err != nil {
		return nil, 0, nil, err
	}
	return j, j.info.Shares, done, nil
}

// put writes the job's key and those of its finished shares under a new
// lease of ttl.
func (j *Job) put(ctx context.Context, ttl time.Duration, done map[int]ShareInfo) error {
	lease, err := j.c.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return fmt.Errorf("recording job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	v, _ := json.Marshal(j.info)
	ops := []clientv3.Op{clientv3.OpPut(j.key, string(v), clientv3.WithLease(lease.ID))}
	for k, s := range done {
		sv, _ := json.Marshal(s)
		ops = append(ops, clientv3.OpPut(shareKey(j.key, k), string(sv), clientv3.WithLease(lease.ID)))
	}
	if _, err := j.c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return fmt.Errorf("recording job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	return nil
}

// ShareDone records that share k finished, having moved files and bytes.
func (j *Job) ShareDone(ctx context.Context, k int, files, bytes int64) error {
	ctx, cancel := context.WithTimeout(ctx, j.c.cfg.DialTimeout)
	defer cancel()
	resp, err := j.c.cli.Get(ctx, j.key)
	if err != nil {
		return fmt.Errorf("recording share %d of job %s (%s): %w", k, j.key, j.c.where(), reason(err))
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("recording share %d (%s): the job's record %s is gone", k, j.c.where(), j.key)
	}
	v, _ := json.Marshal(ShareInfo{Files: files, Bytes: bytes, Finished: time.Now().UTC()})
	if _, err := j.c.cli.Put(ctx, shareKey(j.key, k), string(v), clientv3.WithLease(clientv3.LeaseID(resp.Kvs[0].Lease))); err != nil {
		return fmt.Errorf("recording share %d of job %s (%s): %w", k, j.key, j.c.where(), reason(err))
	}
	return nil
}

// Finish records that the job finished; its keys expire after keep.
func (j *Job) Finish(ctx context.Context, keep time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, j.c.cfg.DialTimeout)
	defer cancel()
	resp, err := j.c.cli.Get(ctx, j.key+"/shares/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("finishing job %s (%s): %w", j.key, j.c.where(), reason(err))
	}
	done := map[int]ShareInfo{}
	for _, kv := range resp.Kvs {
		i, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), j.key+"/shares/"))
		var s ShareInfo
		if err == nil && json.Unmarshal(kv.Value, &s) == nil {
			done[i] = s
		}
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
