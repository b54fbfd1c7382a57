package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/miekg/dns"
)

// ExplainFunc answers req as a client of namespace ns would be answered ("" for the namespace
// meshdns serves) and returns the explanation to send as JSON.
type ExplainFunc func(r *http.Request, req *dns.Msg, ns string) any

// debugExplain explains one question: ?name= (required), &type= (default A), &class= (default
// IN), &ns= (default the namespace meshdns serves).
func (s *Server) debugExplain(w http.ResponseWriter, r *http.Request) {
	if s.o.Explain == nil {
		http.Error(w, "explain is not available", http.StatusNotFound)
		return
	}
	p := r.URL.Query()
	req, err := explainQuestion(p.Get("name"), p.Get("type"), p.Get("class"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, err := json.MarshalIndent(s.o.Explain(r, req, p.Get("ns")), "", "  ")
	if err != nil {
		s.o.Logger.Error("cannot render /debug/explain", "err", err)
		http.Error(w, "cannot render the explanation", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

// explainQuestion builds the query a client would send for name, of type and class given by
// their mnemonics (or TYPEnn, CLASSnn).
func explainQuestion(name, qtype, class string) (*dns.Msg, error) {
	if name == "" {
		return nil, fmt.Errorf("name is required")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("name %q is not a domain name", name)
	}
	t, err := mnemonic(qtype, "A", dns.StringToType, "TYPE")
	if err != nil {
		return nil, fmt.Errorf("type: %w", err)
	}
	if strings.EqualFold(class, "CHAOS") {
		class = "CH" // dig's spelling
	}
	c, err := mnemonic(class, "IN", dns.StringToClass, "CLASS")
	if err != nil {
		return nil, fmt.Errorf("class: %w", err)
	}
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), t)
	req.Question[0].Qclass = c
	return req, nil
}

// mnemonic parses s by names ("AAAA") or as prefix + number ("TYPE65"); empty is def.
func mnemonic(s, def string, names map[string]uint16, prefix string) (uint16, error) {
	if s == "" {
		s = def
	}
	s = strings.ToUpper(s)
	if v, ok := names[s]; ok {
		return v, nil
	}
	var n uint16
	if rest, ok := strings.CutPrefix(s, prefix); ok {
		if _, err := fmt.Sscanf(rest, "%d", &n); err == nil && fmt.Sprint(n) == rest {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unknown %q", s)
}
