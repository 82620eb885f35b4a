package admin

import (
	"net"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// pageDoc is the admin page parsed: the text of each section's table cells, and what else a
// check needs.
type pageDoc struct {
	title    string
	sections map[string][]string // h2 text -> text of every td after it
	scripts  int
	tables   int
	headless int // tables without a header row
}

func parsePage(t *testing.T, body string) pageDoc {
	t.Helper()
	root, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	doc := pageDoc{sections: map[string][]string{}}
	section := ""
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "title":
				doc.title = text(n)
			case "script":
				doc.scripts++
			case "h2":
				section = text(n)
			case "td":
				doc.sections[section] = append(doc.sections[section], text(n))
			case "table":
				doc.tables++
				if !strings.Contains(render(n), "<th>") {
					doc.headless++
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return doc
}

// text is the text content of n, spaces collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func render(n *html.Node) string {
	var b strings.Builder
	html.Render(&b, n)
	return b.String()
}

// cellsContain reports whether some cell of cells contains every one of parts.
func cellsContain(cells []string, parts ...string) bool {
	for _, c := range cells {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(c, p)
		}
		if all {
			return true
		}
	}
	return false
}

func TestPageShowsTheSameTables(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	s.get(t, "http://api.example.com/")
	s.get(t, "http://dead.example.com/")
	s.get(t, "http://dead.example.com/")
	s.settle(t)
	code, body := s.fetch(t, "GET", "/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	doc := parsePage(t, body)
	if doc.title != "meshentry admin" || doc.scripts != 0 || doc.tables != 5 || doc.headless != 0 {
		t.Fatalf("page: title %q, %d scripts, %d tables of which %d without headers; want a titled page of 5 tables with headers and no script",
			doc.title, doc.scripts, doc.tables, doc.headless)
	}
	backend := s.backend
	_, backendPort, _ := net.SplitHostPort(backend)
	tests := []struct {
		name    string
		section string
		parts   []string
	}{
		{name: "lists a service with its entry and source", section: "Services", parts: []string{"default/api", "stack.yaml:1"}},
		{name: "lists a service's endpoint with its port", section: "Services", parts: []string{"127.0.0.1:" + backendPort}},
		{name: "lists the cluster of a service port", section: "Services", parts: []string{"outbound|80||api.example.com"}},
		{name: "marks a service this namespace does not see", section: "Services", parts: []string{"shop", "(not this namespace)"}},
		{name: "lists an endpoint in the clusters table", section: "Clusters", parts: []string{backend}},
		{name: "shows an ejected endpoint's health flag", section: "Clusters", parts: []string{"/failed_outlier_check"}},
		{name: "shows a cluster without endpoints", section: "Clusters", parts: []string{"no endpoints (NONE)"}},
		{name: "lists the forward proxy listener", section: "Listeners", parts: []string{s.forward}},
		{name: "shows the last reload was refused", section: "Last reload", parts: []string{"refused"}},
		{name: "shows the reload error with file:line", section: "Last reload", parts: []string{"stack.yaml:3: ServiceEntry default/bad"}},
		{name: "routes the host to the winning entry", section: "Routes", parts: []string{"default/api"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !cellsContain(doc.sections[tc.section], tc.parts...) {
				t.Errorf("section %q has no cell with %q; cells: %q", tc.section, tc.parts, doc.sections[tc.section])
			}
		})
	}
	t.Run("counts requests per endpoint", func(t *testing.T) {
		// The clusters table's row for the live endpoint: address, health, weight, locality,
		// priority, then active, total and error requests.
		var row []string
		cells := doc.sections["Clusters"]
		for i, c := range cells {
			if c == backend && i+8 < len(cells) {
				row = cells[i : i+9]
			}
		}
		if len(row) == 0 || row[1] != "healthy" || row[6] != "1" || row[7] != "0" {
			t.Errorf("row of %s = %q, want healthy with 1 request and no error", backend, row)
		}
	})
}

func TestPageListsAtMostPageRows(t *testing.T) {
	t.Parallel()
	s := startStack(t, func(c *Config) { c.PageRows = 2 })
	code, body := s.fetch(t, "GET", "/")
	if code != 200 {
		t.Fatalf("/ = %d", code)
	}
	doc := parsePage(t, body)
	tests := []struct {
		name, section, text string
	}{
		{name: "says how many services it left out", section: "Services", text: "5 more services not shown"},
		{name: "says how many clusters it left out", section: "Clusters", text: "3 more clusters not shown"},
		{name: "says how many routes it left out", section: "Routes", text: "3 more routes not shown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(body, tc.text) {
				t.Errorf("the page lacks %q", tc.text)
			}
		})
	}
	if cellsContain(doc.sections["Services"], "db.example.com") {
		t.Errorf("the third service is listed despite PageRows 2")
	}
}
