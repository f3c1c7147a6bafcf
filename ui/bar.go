package ui

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rivo/uniseg"

	"github.com/xfer-io/xfer/internal/progress"
)

// bar is the live display of ModeBar, modelled on rclone's -P: a line of
// bytes, percentage, rate and a labeled ETA, a line of file counts, and
// one line per file in flight. Every line is fitted to the terminal's
// width (queried at each redraw, so a resized window is followed) and
// never reaches the last column, so that no line wraps and a redraw
// always overwrites exactly the rows of the previous frame.
type bar struct {
	w    io.Writer
	size func() (cols, rows int)
	// last frame: the width of each of its lines (cells) and the
	// terminal's width when it was drawn; nil when nothing is drawn.
	shown     []int
	shownCols int
	rate      rateMeter
}

// maxFlightLines bounds the lines listing files in flight.
const maxFlightLines = 5

func newBar(w io.Writer, size func() (int, int), start time.Time) *bar {
	b := &bar{w: w, size: size}
	b.rate.start = start
	return b
}

// drawn reports whether a frame is on screen.
func (b *bar) drawn() bool { return b.shown != nil }

// sample records the bytes done at time t, for the rate.
func (b *bar) sample(t time.Time, done int64) { b.rate.add(t, done) }

// draw replaces the frame on screen with the one for e.
func (b *bar) draw(e progress.Event, now time.Time) {
	cols, rows := b.size()
	lines := frame(e, b.rate.rate(now), cols, rows)
	var s strings.Builder
	b.home(&s, cols)
	for i, l := range lines {
		if i > 0 {
			s.WriteByte('\n')
		}
		s.WriteString("\x1b[2K")
		s.WriteString(l)
	}
	s.WriteString("\x1b[J") // what is left of a taller previous frame
	_, _ = io.WriteString(b.w, s.String())
	b.shown = b.shown[:0]
	for _, l := range lines {
		b.shown = append(b.shown, uniseg.StringWidth(l))
	}
	b.shownCols = cols
}

// clear removes the frame, leaving the cursor where it began.
func (b *bar) clear() {
	if b.shown == nil {
		return
	}
	cols, _ := b.size()
	var s strings.Builder
	b.home(&s, cols)
	s.WriteString("\x1b[J")
	_, _ = io.WriteString(b.w, s.String())
	b.shown = nil
}

// home moves the cursor to the first column of the frame's first row. If
// the terminal became narrower since the frame was drawn, a terminal that
// rewraps lines holds each of them on more rows; count those.
func (b *bar) home(s *strings.Builder, cols int) {
	if b.shown == nil {
		return
	}
	up := len(b.shown) - 1
	if cols < b.shownCols && cols > 0 {
		up = -1
		for _, w := range b.shown {
			up += max(1, (w+cols-1)/cols)
		}
	}
	s.WriteByte('\r')
	if up > 0 {
		s.WriteString("\x1b[" + strconv.Itoa(up) + "A")
	}
}

// frame returns the lines of the display for e at a terminal of cols x
// rows, each narrower than cols cells. rate is in bytes per second, < 0
// while not yet known.
func frame(e progress.Event, rate float64, cols, rows int) []string {
	room := cols - 1 // the last column would make some terminals wrap
	if room < 1 {
		room = 1
	}
	done, total := max(e.BytesDone, 0), max(e.BytesTotal, e.BytesDone, 0)
	pct := "-"
	if total > 0 {
		pct = strconv.Itoa(int(min(100, done*100/total))) + "%"
	}
	rateS := "-"
	if rate >= 0 {
		rateS = FormatBytes(int64(rate)) + "/s"
	}
	eta := "ETA " + etaText(done, total, rate, e.Listing)
	size := FormatBytes(done) + " / " + FormatBytes(total)
	line1 := fit(room,
		"Transferred: "+size+", "+pct+", "+rateS+", "+eta,
		size+", "+pct+", "+rateS+", "+eta,
		FormatBytes(done)+" "+pct+" "+rateS+" "+eta,
		pct+" "+rateS+" "+eta,
		pct+" "+eta,
	)
	if w := room - uniseg.StringWidth(line1) - 2; w >= 12 && cols >= 80 {
		line1 += " " + gauge(done, total, min(w, 30))
	}
	filesTotal := max(e.FilesTotal, e.FilesDone)
	files := strconv.FormatInt(e.FilesDone, 10) + " / " + strconv.FormatInt(filesTotal, 10)
	if e.Listing {
		files += "+"
	}
	flying := ""
	if n := len(e.InFlight); n > 0 {
		flying = ", " + strconv.Itoa(n) + " in flight"
		if n >= progress.MaxInFlight {
			flying = ", " + strconv.Itoa(n) + "+ in flight"
		}
	}
	listing := ""
	if e.Listing {
		listing = ", listing"
	}
	line2 := fit(room,
		"Files:       "+files+flying+listing,
		"Files: "+files+flying+listing,
		"Files: "+files+listing,
		"Files: "+files,
		files,
	)
	lines := []string{line1, line2}
	nf := min(maxFlightLines, len(e.InFlight))
	if rows > 0 {
		nf = min(nf, rows-3) // keep the frame within the screen
	}
	for _, f := range e.InFlight[:max(nf, 0)] {
		lines = append(lines, flightLine(f, room))
	}
	return lines
}

// flightLine is " * name: 45% of 4.0 MiB", or for a batch of small files
// " * name +37 files, 1.0 MiB"; the name is cut from the left to fit.
func flightLine(f progress.InFlight, room int) string {
	var tail string
	switch {
	case f.Files > 1:
		tail = " +" + strconv.Itoa(f.Files-1) + " files, " + FormatBytes(f.Size)
	case f.Size > 0:
		tail = ": " + strconv.Itoa(int(min(100, max(f.Done, 0)*100/f.Size))) + "% of " + FormatBytes(f.Size)
	default:
		tail = ": " + FormatBytes(f.Size)
	}
	const lead = " * "
	name := printable(f.Path)
	if w := room - len(lead) - uniseg.StringWidth(tail); w >= 8 {
		return lead + cutLeft(name, w) + tail
	}
	return cutRight(lead+name, room)
}

// fit returns the first candidate that fits in room cells, or the last
// one cut to fit.
func fit(room int, candidates ...string) string {
	for _, c := range candidates {
		if uniseg.StringWidth(c) <= room {
			return c
		}
	}
	return cutRight(candidates[len(candidates)-1], room)
}

// cutRight keeps the first room cells of s, ending in "…" if cut.
func cutRight(s string, room int) string {
	if uniseg.StringWidth(s) <= room {
		return s
	}
	var b strings.Builder
	w := 0
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		gw := g.Width()
		if w+gw > room-1 {
			break
		}
		b.WriteString(g.Str())
		w += gw
	}
	if room >= 1 {
		b.WriteString("…")
	}
	return b.String()
}

// cutLeft keeps the last room cells of s, starting with "…" if cut: the
// end of a path names the file.
func cutLeft(s string, room int) string {
	if uniseg.StringWidth(s) <= room {
		return s
	}
	var parts []string
	var widths []int
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		parts = append(parts, g.Str())
		widths = append(widths, g.Width())
	}
	w, i := 0, len(parts)
	for i > 0 && w+widths[i-1] <= room-1 {
		i--
		w += widths[i]
	}
	return "…" + strings.Join(parts[i:], "")
}

// gauge is a bar of width cells: "[=====>    ]".
func gauge(done, total int64, width int) string {
	inner := width - 2
	n := 0
	if total > 0 {
		n = int(min(done, total) * int64(inner) / total)
	}
	s := strings.Repeat("=", n)
	if n < inner {
		s += ">" + strings.Repeat(" ", inner-n-1)
	}
	return "[" + s + "]"
}

// etaText is the time left at rate: "-" while unknown (no rate yet, or
// the listing still adds work), "0s" when everything is done.
func etaText(done, total int64, rate float64, listing bool) string {
	left := total - done
	switch {
	case left <= 0 && !listing:
		return "0s"
	case listing || rate <= 0:
		return "-"
	}
	return formatETA(float64(left) / rate)
}

// formatETA formats seconds as "7s", "4m05s", "2h03m", "999h+".
func formatETA(sec float64) string {
	if math.IsNaN(sec) || sec < 0 {
		return "-"
	}
	s := int64(math.Ceil(sec))
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 1000*3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return "999h+"
}

// rateMeter measures bytes per second over the last rateWindow.
type rateMeter struct {
	start   time.Time
	samples []rateSample // oldest first, within rateWindow of the newest
}

type rateSample struct {
	t    time.Time
	done int64
}

// rateWindow is how far back the rate looks: long enough to smooth out
// chunk-sized steps, short enough to follow a change of pace.
const rateWindow = 10 * time.Second

// minRateSpan is how much of a run the rate needs before it is shown.
const minRateSpan = time.Second

func (m *rateMeter) add(t time.Time, done int64) {
	if len(m.samples) == 0 {
		m.samples = append(m.samples, rateSample{t: m.start, done: 0})
	}
	m.samples = append(m.samples, rateSample{t: t, done: done})
	i := 0
	for i < len(m.samples)-2 && t.Sub(m.samples[i+1].t) >= rateWindow {
		i++
	}
	if i > 0 {
		m.samples = append(m.samples[:0], m.samples[i:]...)
	}
	if len(m.samples) > 1024 { // bounded whatever the event rate
		m.samples = append(m.samples[:0], m.samples[len(m.samples)-512:]...)
	}
}

// rate is bytes per second, or -1 before minRateSpan of samples.
func (m *rateMeter) rate(now time.Time) float64 {
	if len(m.samples) < 2 {
		return -1
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	span := now.Sub(first.t)
	if span < minRateSpan || last.t.Sub(first.t) <= 0 {
		return -1
	}
	return float64(max(last.done-first.done, 0)) / span.Seconds()
}
