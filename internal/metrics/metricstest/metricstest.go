// Package metricstest scrapes a real Prometheus endpoint and reads samples out of what it served,
// for tests of the metrics and of the proxy that feeds them.
package metricstest

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url, checks that it served the Prometheus text format, and parses it.
func Scrape(tb testing.TB, url string) Families {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("scrape %s: read: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("scrape %s: status %d: %s", url, resp.StatusCode, body)
	}
	if ct := expfmt.ResponseFormat(resp.Header); ct.FormatType() != expfmt.TypeTextPlain {
		tb.Fatalf("scrape %s: Content-Type %q is not the text format", url, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("scrape %s: parse: %v\n%s", url, err, body)
	}
	return fams
}

// Match returns the samples of family name whose labels include every pair of want.
func (f Families) Match(name string, want map[string]string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.GetMetric() {
		if Has(m, want) {
			out = append(out, m)
		}
	}
	return out
}

// Sum adds up the counter, gauge or untyped values of the samples Match returns; for a
// histogram it adds their sample counts.
func (f Families) Sum(name string, want map[string]string) float64 {
	var sum float64
	for _, m := range f.Match(name, want) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// Labels returns m's labels as a map.
func Labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// Has reports whether m has every label pair of want.
func Has(m *dto.Metric, want map[string]string) bool {
	got := Labels(m)
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			return false
		}
	}
	return true
}
