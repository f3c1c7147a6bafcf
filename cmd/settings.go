package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xfer-io/xfer/internal/config"
	"github.com/xfer-io/xfer/internal/exitcode"
	"github.com/xfer-io/xfer/internal/plural"
	"github.com/xfer-io/xfer/plan"
)

// Settings: one parser for three sources. A flag takes its value from the
// command line; failing that from XFER_<FLAG> (dashes as underscores, then
// any alias the flag lists, such as the mover's MOVER_SOCKET); failing that
// from the key of the same name in the config file. Whatever the source,
// the text goes through the flag's own pflag.Value.Set, so `--dry-run yes`,
// XFER_DRY_RUN=yes and `dry-run: yes` are all the same usage error (exit 2)
// naming where the value came from. Each flag takes exactly one source: a
// list flag set on the command line is not extended by the file.
//
// An environment variable set to the empty string counts as unset. The
// config file is checked as a whole before any of it is used (config.Validate:
// unknown keys, values no flag of that name would take, remotes), so a typo
// for one command is caught by all.

// envAliasAnnotation is the flag annotation listing environment variables
// read after XFER_<FLAG> (the mover's names, for the daemon).
const envAliasAnnotation = "xfer_env_alias"

// envVar is the environment variable of a flag: XFER_CHUNK_SIZE for
// --chunk-size.
func envVar(flag string) string { return "XFER_" + envName(flag) }

// notSettings are flags that no environment variable or config key sets.
var notSettings = map[string]bool{"help": true, "version": true}

// editsConfig reports whether cmd is one of the config and remote commands:
// their own flags describe one edit of the file and are read from the
// command line only.
func editsConfig(cmd *cobra.Command) bool {
	for c := cmd; c.HasParent(); c = c.Parent() {
		if !c.Parent().HasParent() && (c.Name() == "config" || c.Name() == "remote") {
			return true
		}
	}
	return false
}

// settle fills the flags of cmd that the command line left unset from the
// environment and the config file. tolerant is for the config and remote
// commands, which must run on a broken file to repair it: a file that does
// not parse or validate then gives no settings instead of an error.
func (a *app) settle(cmd *cobra.Command, tolerant bool) error {
	flags := cmd.Flags()
	a.v = flagValues{flags}
	own := map[string]bool{}
	if editsConfig(cmd) {
		cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) { own[f.Name] = true })
	}
	// A deprecated alias (see deprecatedAlias) is its flag under another
	// name: whichever name sets it settles both.
	canonical := func(f *pflag.Flag) *pflag.Flag {
		if to := f.Annotations[aliasOfAnnotation]; len(to) == 1 {
			if t := flags.Lookup(to[0]); t != nil {
				return t
			}
		}
		return f
	}
	aliases := map[string][]string{}
	flags.VisitAll(func(f *pflag.Flag) {
		if t := canonical(f); t != f {
			aliases[t.Name] = append(aliases[t.Name], f.Name)
		}
	})
	settled := map[string]bool{}
	flags.Visit(func(f *pflag.Flag) { settled[canonical(f).Name] = true })
	// -q and -v on one command line contradict each other (rclone
	// refuses them too); from different sources the command line wins.
	if q, v := flags.Lookup("quiet"), flags.Lookup("verbose"); q != nil && v != nil && q.Changed && v.Changed &&
		q.Value.String() == "true" && v.Value.String() != "0" {
		return exitcode.Usagef("-q (--quiet) and -v (--verbose) do not go together: choose one")
	}
	skip := func(f *pflag.Flag) bool { return settled[f.Name] || own[f.Name] || notSettings[f.Name] }

	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		if err != nil || skip(f) || canonical(f) != f {
			return
		}
		names := []string{envVar(f.Name)}
		for _, old := range aliases[f.Name] {
			names = append(names, envVar(old))
		}
		for _, name := range append(names, f.Annotations[envAliasAnnotation]...) {
			val := os.Getenv(name)
			if val == "" {
				continue
			}
			settled[f.Name] = true
			if name != names[0] && slices.Contains(names, name) {
				fmt.Fprintf(a.stderr, "xfer: warning: %s is deprecated: use %s\n", name, names[0])
			}
			if serr := flags.Set(f.Name, val); serr != nil {
				err = exitcode.Usagef("%s=%q: %s", name, val, invalidValue(f, val, setCause(serr)))
			}
			return
		}
	})
	if err != nil {
		return err
	}
	if err := checkEnvNames(os.Environ()); err != nil {
		return err
	}

	path, explicit := a.configPath()
	if path == "" {
		return nil
	}
	data, rerr := os.ReadFile(path)
	switch {
	case rerr == nil:
	case errors.Is(rerr, fs.ErrNotExist) && (!explicit || tolerant):
		return nil
	case errors.Is(rerr, fs.ErrPermission) && !explicit && !visible(path):
		// The default place lies in a directory this user may not
		// search (a service user's HOME of another owner): there is no
		// file of its own to read. A file that is there but unreadable
		// is an error below.
		return nil
	case tolerant:
		return nil
	default:
		return exitcode.Usagef("config file %s: %s", path, fileProblem(rerr))
	}
	rep := config.Validate(data, configKeys())
	if !rep.OK() {
		if tolerant {
			return nil
		}
		p := rep.Errors[0]
		at := path
		if p.Line > 0 {
			at = fmt.Sprintf("%s:%d", path, p.Line)
		}
		more := ""
		if n := len(rep.Errors) - 1; n > 0 {
			more = fmt.Sprintf(" (and %s; see 'xfer config validate')", plural.Of(n, "more error"))
		}
		return exitcode.Usagef("config file %s: %s%s", at, p.Msg, more)
	}
	file, lerr := config.Load(path)
	if lerr != nil {
		if tolerant {
			return nil
		}
		return exitcode.Usagef("%v", lerr)
	}
	a.cfg, a.configUsed = file, path
	for _, s := range file.Settings() {
		f := flags.Lookup(s.Key)
		if f == nil {
			continue
		}
		if f = canonical(f); skip(f) {
			continue
		}
		settled[f.Name] = true
		if !strings.EqualFold(s.Key, f.Name) {
			fmt.Fprintf(a.stderr, "xfer: warning: config file %s:%d: key %q is deprecated: use %q\n", path, s.Line, s.Key, f.Name)
		}
		for _, val := range s.Values {
			if serr := flags.Set(f.Name, val); serr != nil {
				return exitcode.Usagef("config file %s:%d: key %q: %q: %s", path, s.Line, s.Key, val, invalidValue(f, val, setCause(serr)))
			}
		}
	}
	return nil
}

// visible reports whether path can be looked up at all (it exists and
// every directory on the way may be searched).
func visible(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// checkEnvNames refuses an XFER_ variable whose name is a near miss of a
// setting's (XFER_DRYRUN for XFER_DRY_RUN): ignored, it would run a sync
// for real that was meant as a dry run. Names that resemble no setting
// are left alone (other tools may use the prefix).
func checkEnvNames(environ []string) error {
	var keys []string
	known := map[string]bool{}
	for k := range configKeys() {
		keys = append(keys, k)
		known[envVar(k)] = true
	}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, "XFER_")
		if !ok || known[name] || rest == "" {
			continue
		}
		guess := strings.ToLower(strings.ReplaceAll(rest, "_", "-"))
		if best := config.Nearest(guess, keys); best != "" {
			return exitcode.Usagef("%s is not a setting of xfer (did you mean %s?): correct or unset it", name, envVar(best))
		}
	}
	return nil
}

// setCause is the error of the Value's Set inside pflag's wrapping.
func setCause(err error) error {
	var ive *pflag.InvalidValueError
	if errors.As(err, &ive) && ive.Unwrap() != nil {
		return ive.Unwrap()
	}
	return err
}

// fileProblem words an error opening or reading a file without Go's
// "open PATH:" prefix (the caller names the file).
func fileProblem(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// configKeys maps the name of every flag the config file may set to how
// that flag parses a value: the flags of every command but config and
// remote (whose flags describe one edit, so are read from the command line
// only), without --config and --help, which mean nothing inside the file.
// A name several commands share must suit each of them. The values are
// parsed by the flags of a command tree of its own, so checking a file
// changes no flag of the running command.
func configKeys() map[string]config.Key {
	scratch := newRootCmd(&app{})
	byName := map[string][]*pflag.Flag{}
	seen := map[*pflag.Flag]bool{}
	add := func(f *pflag.Flag) {
		if f.Name == "config" || notSettings[f.Name] || seen[f] {
			return
		}
		seen[f] = true
		byName[f.Name] = append(byName[f.Name], f)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasParent() && !c.Parent().HasParent() && (c.Name() == "config" || c.Name() == "remote") {
			return
		}
		c.LocalFlags().VisitAll(add)
		c.PersistentFlags().VisitAll(add)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(scratch)
	keys := make(map[string]config.Key, len(byName))
	for name, fl := range byName {
		list := false
		for _, f := range fl {
			switch f.Value.(type) {
			case pflag.SliceValue, plan.RuleFlag:
				list = true // --export, --protos, --include ... repeat
			}
		}
		keys[name] = config.Key{List: list, Parse: func(v string) error {
			for _, f := range fl {
				if err := f.Value.Set(v); err != nil {
					return errors.New(invalidValue(f, v, err))
				}
			}
			return nil
		}}
	}
	return keys
}
