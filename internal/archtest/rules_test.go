package archtest

// The loader and the three rules. Each rule takes a parsed tree and its
// tables, and returns findings; arch_test.go runs them on this module and
// selftest_test.go on synthetic modules.

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// tree is every Go package of one module, parsed (all files, whatever their
// build tags, so a rule holds for every build).
type tree struct {
	root   string // directory holding go.mod
	module string // module path from go.mod
	fset   *token.FileSet
	pkgs   map[string]*pkg // by path relative to root ("." for the root)
}

type pkg struct {
	rel   string // slash path relative to the module root, "." for the root
	name  string // package name of the non-test files ("" if none)
	files []*srcFile
}

type srcFile struct {
	rel   string // slash path relative to the module root
	test  bool   // a _test.go file
	xtest bool   // a _test.go file of the external test package (name_test)
	ast   *ast.File
}

// finding is one rule violation. key is what an allowlist entry names to
// accept it; msg says where and what, for the failure message.
type finding struct {
	key string
	msg string
}

// load parses the module whose go.mod is in root. Directories named
// testdata or vendor, or starting with "." or "_", and nested modules are
// skipped, as the go command does.
func load(root string) (*tree, error) {
	mod, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	t := &tree{root: root, module: mod, fset: token.NewFileSet(), pkgs: map[string]*pkg{}}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p == root {
				return nil
			}
			if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(t.fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parse %s: %w", rel, err)
		}
		dir := path.Dir(rel)
		pk := t.pkgs[dir]
		if pk == nil {
			pk = &pkg{rel: dir}
			t.pkgs[dir] = pk
		}
		sf := &srcFile{rel: rel, test: strings.HasSuffix(name, "_test.go"), ast: f}
		sf.xtest = sf.test && strings.HasSuffix(f.Name.Name, "_test")
		if !sf.test {
			pk.name = f.Name.Name
		}
		pk.files = append(pk.files, sf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// sortedPkgs returns the packages in path order, for stable messages.
func (t *tree) sortedPkgs() []*pkg {
	out := make([]*pkg, 0, len(t.pkgs))
	for _, p := range t.pkgs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

// local maps an import path to a package path relative to the module root,
// or reports false for a package outside the module.
func (t *tree) local(imp string) (string, bool) {
	if imp == t.module {
		return ".", true
	}
	rest, ok := strings.CutPrefix(imp, t.module+"/")
	return rest, ok
}

func (t *tree) pos(p token.Pos) string {
	pos := t.fset.Position(p)
	rel, err := filepath.Rel(t.root, pos.Filename)
	if err != nil {
		rel = pos.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), pos.Line)
}

// ---- rule a: layers ----

// layer is one row of the layer table: the packages in it (an exact path
// relative to the module root, or "dir/*" for every package below dir) and
// whether they may import each other.
type layer struct {
	name  string
	pkgs  []string
	peers bool
}

// layerOf returns the index of the layer holding package rel: an exact
// entry wins over a "dir/*" pattern, and a longer pattern over a shorter.
func layerOf(tab []layer, rel string) (int, bool) {
	best, bestLen := -1, -1
	for i, l := range tab {
		for _, p := range l.pkgs {
			if p == rel {
				return i, true
			}
			if dir, ok := strings.CutSuffix(p, "/*"); ok && strings.HasPrefix(rel, dir+"/") && len(dir) > bestLen {
				best, bestLen = i, len(dir)
			}
		}
	}
	return best, best >= 0
}

// mayImport says whether package from may import package to under tab, and
// why not when it may not.
func mayImport(tab []layer, from, to string) (bool, string) {
	fi, ok := layerOf(tab, from)
	if !ok {
		return false, fmt.Sprintf("package %s is in no layer", from)
	}
	ti, ok := layerOf(tab, to)
	if !ok {
		return false, fmt.Sprintf("package %s is in no layer", to)
	}
	switch {
	case ti < fi:
		return true, ""
	case ti == fi && tab[fi].peers:
		return true, ""
	case ti == fi:
		return false, fmt.Sprintf("%s and %s are both in layer %q, whose packages may not import each other", from, to, tab[fi].name)
	default:
		return false, fmt.Sprintf("%s (layer %q) may not import %s (layer %q, above it)", from, tab[fi].name, to, tab[ti].name)
	}
}

// checkLayers reports packages that no layer names and imports that do
// not point down the table. External test packages (package x_test) are
// outside the layering: they may import anything, as the go command allows.
func checkLayers(t *tree, tab []layer) []finding {
	var out []finding
	for _, p := range t.sortedPkgs() {
		if _, ok := layerOf(tab, p.rel); !ok {
			out = append(out, finding{key: p.rel, msg: fmt.Sprintf(
				"package %s is in no layer: add it to the layers table in internal/archtest/arch_test.go", p.rel)})
			continue
		}
		for _, f := range p.files {
			if f.xtest {
				continue
			}
			for _, is := range f.ast.Imports {
				imp, _ := strconv.Unquote(is.Path.Value)
				to, ok := t.local(imp)
				if !ok {
					continue
				}
				if ok, why := mayImport(tab, p.rel, to); !ok {
					out = append(out, finding{key: p.rel + " -> " + to, msg: t.pos(is.Pos()) + ": " + why})
				}
			}
		}
	}
	return out
}

// ---- rule b: package-level mutable state ----

// stateFree says whether package p must hold no package-level mutable
// state: everything but cmd/ (the program's wiring: flags, version
// strings set by -X) and package main programs.
func stateFree(p *pkg) bool {
	return p.rel != "cmd" && !strings.HasPrefix(p.rel, "cmd/") && p.name != "main"
}

// checkGlobals reports every package-level var of a non-test file in a
// state-free package, unless it is blank (`var _ T = v`, an interface
// assertion) or an error sentinel. The key is "pkg.Name".
func checkGlobals(t *tree) []finding {
	var out []finding
	for _, p := range t.sortedPkgs() {
		if !stateFree(p) {
			continue
		}
		for _, f := range p.files {
			if f.test {
				continue
			}
			for _, d := range f.ast.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if n.Name == "_" {
							continue
						}
						var val ast.Expr
						if len(vs.Values) == len(vs.Names) {
							val = vs.Values[i]
						}
						if val != nil && isErrorSentinel(val) {
							continue
						}
						out = append(out, finding{key: p.rel + "." + n.Name, msg: fmt.Sprintf(
							"%s: package-level var %s is mutable state: pass it down in a struct, make it a const or a function, or (if it is never written after init) allowlist it in internal/archtest with the reason",
							t.pos(n.Pos()), n.Name)})
					}
				}
			}
		}
	}
	return out
}

// isErrorSentinel reports errors.New(...), fmt.Errorf(...) and literals
// of a type named *Error or *Err (T{...}, &T{...}).
func isErrorSentinel(e ast.Expr) bool {
	switch v := e.(type) {
	case *ast.CallExpr:
		return isCall(v, "errors", "New") || isCall(v, "fmt", "Errorf")
	case *ast.UnaryExpr:
		return v.Op == token.AND && isErrorSentinel(v.X)
	case *ast.CompositeLit:
		name := ""
		switch ty := v.Type.(type) {
		case *ast.Ident:
			name = ty.Name
		case *ast.SelectorExpr:
			name = ty.Sel.Name
		}
		return strings.HasSuffix(name, "Error") || strings.HasSuffix(name, "Err")
	}
	return false
}

// isCall reports a call of pkg.fn (by the file's import name).
func isCall(c *ast.CallExpr, pkg, fn string) bool {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != fn {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

// ---- rule c: no JSON inside other messages' fields ----

// inTransfer reports transfer and every package below it.
func inTransfer(rel string) bool {
	return rel == "transfer" || strings.HasPrefix(rel, "transfer/")
}

// checkJSON reports, in the non-test files of transfer/...:
//   - an import of encoding/json outside transfer/wire (the protocol's
//     codecs live there; a service hands wire typed values);
//   - a struct field of type json.RawMessage, or a []byte or string field
//     whose name says JSON;
//   - string(b) of a json.Marshal result b, and json.Unmarshal of
//     []byte(x.F): JSON carried in a string field of another message.
//
// The key is the file's path.
func checkJSON(t *tree) []finding {
	var out []finding
	for _, p := range t.sortedPkgs() {
		if !inTransfer(p.rel) {
			continue
		}
		for _, f := range p.files {
			if f.test {
				continue
			}
			add := func(pos token.Pos, format string, args ...any) {
				out = append(out, finding{key: f.rel, msg: t.pos(pos) + ": " + fmt.Sprintf(format, args...)})
			}
			jsonName := ""
			for _, is := range f.ast.Imports {
				if is.Path.Value != `"encoding/json"` {
					continue
				}
				jsonName = "json"
				if is.Name != nil {
					jsonName = is.Name.Name
				}
				if p.rel != "transfer/wire" {
					add(is.Pos(), "package %s imports encoding/json: only transfer/wire encodes messages; give it a typed value", p.rel)
				}
			}
			ast.Inspect(f.ast, func(n ast.Node) bool {
				switch v := n.(type) {
				case *ast.StructType:
					for _, fld := range v.Fields.List {
						for _, nm := range fld.Names {
							if jsonName != "" && isSel(fld.Type, jsonName, "RawMessage") {
								add(nm.Pos(), "field %s is a json.RawMessage: JSON inside a message; give it a typed field", nm.Name)
							} else if strings.Contains(strings.ToLower(nm.Name), "json") && isBytesOrString(fld.Type) {
								add(nm.Pos(), "field %s carries JSON as bytes or text inside a message; give it a typed field", nm.Name)
							}
						}
					}
				case *ast.FuncDecl:
					if jsonName != "" && v.Body != nil {
						checkJSONInStrings(v.Body, jsonName, add)
					}
					return false
				}
				return true
			})
		}
	}
	return out
}

// checkJSONInStrings reports, inside one function body, string(...) of a
// json.Marshal result (directly or through a variable assigned from it)
// and json.Unmarshal([]byte(x.F), ...).
func checkJSONInStrings(body *ast.BlockStmt, jsonName string, add func(token.Pos, string, ...any)) {
	isMarshal := func(e ast.Expr) bool {
		c, ok := e.(*ast.CallExpr)
		return ok && (isCall(c, jsonName, "Marshal") || isCall(c, jsonName, "MarshalIndent"))
	}
	marshalled := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch v := n.(type) {
		case *ast.AssignStmt:
			if len(v.Rhs) == 1 && isMarshal(v.Rhs[0]) && len(v.Lhs) >= 1 {
				if id, ok := v.Lhs[0].(*ast.Ident); ok && id.Name != "_" {
					marshalled[id.Name] = true
				}
			}
		case *ast.ValueSpec:
			if len(v.Values) == 1 && isMarshal(v.Values[0]) && len(v.Names) >= 1 {
				marshalled[v.Names[0].Name] = true
			}
		}
		return true
	})
	ast.Inspect(body, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		if fn, ok := c.Fun.(*ast.Ident); ok && fn.Name == "string" && len(c.Args) == 1 {
			arg := c.Args[0]
			if id, ok := arg.(*ast.Ident); ok && marshalled[id.Name] {
				add(c.Pos(), "string(%s) of a json.Marshal result: JSON inside a string field of another message; give the message a typed field", id.Name)
			}
		}
		if isCall(c, jsonName, "Unmarshal") && len(c.Args) >= 1 {
			if conv, ok := c.Args[0].(*ast.CallExpr); ok && len(conv.Args) == 1 && isBytesType(conv.Fun) {
				if sel, ok := conv.Args[0].(*ast.SelectorExpr); ok {
					add(c.Pos(), "json.Unmarshal of field %s: JSON inside a string field of another message; give the message a typed field", sel.Sel.Name)
				}
			}
		}
		return true
	})
}

func isSel(e ast.Expr, pkg, name string) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != name {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg
}

func isBytesType(e ast.Expr) bool {
	a, ok := e.(*ast.ArrayType)
	if !ok || a.Len != nil {
		return false
	}
	id, ok := a.Elt.(*ast.Ident)
	return ok && (id.Name == "byte" || id.Name == "uint8")
}

func isBytesOrString(e ast.Expr) bool {
	if id, ok := e.(*ast.Ident); ok && id.Name == "string" {
		return true
	}
	return isBytesType(e)
}

// ---- allowlists ----

// unused returns the keys of allow that used does not mark, sorted.
func unused(allow map[string]string, used map[string]bool) []string {
	var out []string
	for k := range allow {
		if !used[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// filter drops the findings an allowlist accepts and returns the rest,
// with the allowlist keys that accepted something marked in used.
func filter(fs []finding, allow map[string]string, used map[string]bool) []finding {
	var out []finding
	for _, f := range fs {
		if _, ok := allow[f.key]; ok {
			used[f.key] = true
			continue
		}
		out = append(out, f)
	}
	return out
}
