package dataprep

import (
	"fmt"
	"unicode/utf8"
)

// Malformed kinds: the sub-reasons of the "malformed" removal reason.
const (
	KindInvalidJSON     = "invalid_json"
	KindInvalidUTF8     = "invalid_utf8"
	KindMissingField    = "missing_field"
	KindEmptyField      = "empty_field"
	KindWrongType       = "wrong_type"
	KindUnknownRole     = "unknown_role"
	KindNoAssistantTurn = "no_assistant_turn"
	KindDuplicateField  = "duplicate_field"
)

// Field tags separate fields in the normalised text, so that the same words
// under different roles or fields hash differently. They are control bytes,
// never word characters.
const (
	tagSystem byte = iota + 1
	tagUser
	tagAssistant
	tagTool
	tagInstruction
	tagInput
	tagOutput
	tagText
)

// recField is one text field of a record.
type recField struct {
	val        []byte // decoded value
	start, end int    // the JSON string in the line, quotes included
	tag        byte
}

// recParser parses one line of a given format. It is reused across lines
// and is not safe for concurrent use.
type recParser struct {
	format Format
	s      scanner
	fields []recField
	kind   string // malformed kind; "" when the record is well formed
	detail string
}

// semantic records the first non-syntax problem of the line.
func (p *recParser) semantic(kind, format string, args ...any) {
	if p.kind == "" {
		p.kind = kind
		p.detail = fmt.Sprintf(format, args...)
	}
}

// parse checks one line (without its line terminator). On return p.kind is
// "" and p.fields holds the text fields, or p.kind and p.detail describe the
// first problem found. Values in p.fields alias line or the parser's scratch
// space until the next call.
func (p *recParser) parse(line []byte) {
	p.fields = p.fields[:0]
	p.kind, p.detail = "", ""
	if !utf8.Valid(line) {
		off := 0
		for off < len(line) {
			r, size := utf8.DecodeRune(line[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		p.kind = KindInvalidUTF8
		p.detail = fmt.Sprintf("invalid UTF-8 byte 0x%02x at offset %d", line[off], off)
		return
	}
	s := &p.s
	s.reset(line)
	s.ws()
	var ok bool
	if first := s.peek(); first != '{' {
		ok = s.valid(line)
		if ok {
			p.semantic(KindWrongType, "record is %s, want an object", jsonTypeName(first))
		}
	} else {
		switch p.format {
		case FormatChat:
			ok = p.chat()
		case FormatInstruction:
			ok = p.instruction()
		default:
			ok = p.text()
		}
		if ok {
			s.ws()
			if s.i != len(s.b) {
				ok = s.unexpected("after top-level value")
			}
		}
	}
	if !ok {
		p.kind = KindInvalidJSON
		p.detail = fmt.Sprintf("%s (offset %d)", s.err, s.errOff)
		p.fields = p.fields[:0]
		return
	}
	if s.lone >= 0 {
		// encoding/json would turn it into U+FFFD; the line, written out
		// as it is, would hand the trainer a string no encoder accepts.
		p.semantic(KindInvalidUTF8, "lone UTF-16 surrogate %s at offset %d (not valid Unicode)", line[s.lone:s.lone+6], s.lone)
	}
	if p.kind != "" {
		p.fields = p.fields[:0]
	}
}

// stringField reads a string value at s.i into a recField.
func (p *recParser) stringField(tag byte) (recField, bool) {
	start := p.s.i
	v, ok := p.s.str(true)
	return recField{val: v, start: start, end: p.s.i, tag: tag}, ok
}

func isBlank(b []byte) bool {
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			if !asciiSpace[c] {
				return false
			}
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if !isSpaceRune(r) {
			return false
		}
		b = b[size:]
	}
	return true
}

func roleTag(role []byte) byte {
	switch string(role) {
	case "system":
		return tagSystem
	case "user":
		return tagUser
	case "assistant":
		return tagAssistant
	case "tool":
		return tagTool
	}
	return 0
}

func (p *recParser) chat() bool {
	s := &p.s
	seen := false
	nmsg := 0
	assistant := false
	ok := s.object(1, func(key []byte) bool {
		if string(key) != "messages" {
			return s.value(1)
		}
		if seen {
			p.semantic(KindDuplicateField, `duplicate field "messages"`)
		}
		seen = true
		if c := s.peek(); c != '[' {
			p.semantic(KindWrongType, `"messages" is %s, want an array`, jsonTypeName(c))
			return s.value(1)
		}
		return s.array(2, func(idx int) bool {
			nmsg++
			if c := s.peek(); c != '{' {
				p.semantic(KindWrongType, "messages[%d] is %s, want an object", idx, jsonTypeName(c))
				return s.value(2)
			}
			var (
				role                          []byte
				content                       recField
				hasRole, hasContent, hasTools bool
			)
			ok := s.object(3, func(k []byte) bool {
				switch string(k) {
				case "role":
					if hasRole {
						p.semantic(KindDuplicateField, `duplicate field "messages[%d].role"`, idx)
					}
					hasRole = true
					if c := s.peek(); c != '"' {
						p.semantic(KindWrongType, "messages[%d].role is %s, want a string", idx, jsonTypeName(c))
						return s.value(3)
					}
					var ok bool
					role, ok = s.str(true)
					return ok
				case "content":
					if hasContent {
						p.semantic(KindDuplicateField, `duplicate field "messages[%d].content"`, idx)
					}
					switch c := s.peek(); c {
					case '"':
						hasContent = true
						var ok bool
						content, ok = p.stringField(0)
						return ok
					case 'n': // null content: allowed with tool_calls
						return s.value(3)
					default:
						hasContent = true
						p.semantic(KindWrongType, "messages[%d].content is %s, want a string", idx, jsonTypeName(c))
						return s.value(3)
					}
				case "tool_calls":
					hasTools = true
				}
				return s.value(3)
			})
			if !ok {
				return false
			}
			tag := roleTag(role)
			switch {
			case !hasRole:
				p.semantic(KindMissingField, `messages[%d] has no "role"`, idx)
			case tag == 0 && role != nil:
				p.semantic(KindUnknownRole, "messages[%d].role %q is not system, user, assistant or tool", idx, role)
			}
			if tag == tagAssistant {
				assistant = true
			}
			switch {
			case !hasContent && !hasTools:
				p.semantic(KindMissingField, `messages[%d] has no "content"`, idx)
			case hasContent && content.val != nil && isBlank(content.val) && !hasTools:
				p.semantic(KindEmptyField, "messages[%d].content is empty", idx)
			case hasContent && content.val != nil:
				content.tag = tag
				p.fields = append(p.fields, content)
			}
			return true
		})
	})
	if !ok {
		return false
	}
	switch {
	case !seen:
		p.semantic(KindMissingField, `missing field "messages"`)
	case nmsg == 0:
		p.semantic(KindEmptyField, `"messages" is empty`)
	case !assistant:
		p.semantic(KindNoAssistantTurn, "no assistant turn")
	}
	return true
}

func (p *recParser) instruction() bool {
	s := &p.s
	var instr, input, output recField
	var hasInstr, hasInput, hasOutput bool
	ok := s.object(1, func(key []byte) bool {
		var dst *recField
		var has *bool
		var tag byte
		switch string(key) {
		case "instruction":
			dst, has, tag = &instr, &hasInstr, tagInstruction
		case "input":
			dst, has, tag = &input, &hasInput, tagInput
		case "output":
			dst, has, tag = &output, &hasOutput, tagOutput
		default:
			return s.value(1)
		}
		if *has {
			p.semantic(KindDuplicateField, "duplicate field %q", key)
		}
		switch c := s.peek(); {
		case c == '"':
			*has = true
			var ok bool
			*dst, ok = p.stringField(tag)
			return ok
		case c == 'n' && tag == tagInput:
			return s.value(1)
		default:
			*has = true
			p.semantic(KindWrongType, "%q is %s, want a string", key, jsonTypeName(c))
			return s.value(1)
		}
	})
	if !ok {
		return false
	}
	switch {
	case !hasInstr:
		p.semantic(KindMissingField, `missing field "instruction"`)
	case isBlank(instr.val):
		p.semantic(KindEmptyField, `"instruction" is empty`)
	}
	switch {
	case !hasOutput:
		p.semantic(KindMissingField, `missing field "output"`)
	case isBlank(output.val):
		p.semantic(KindEmptyField, `"output" is empty`)
	}
	if p.kind == "" {
		p.fields = append(p.fields, instr)
		if hasInput && !isBlank(input.val) {
			p.fields = append(p.fields, input)
		}
		p.fields = append(p.fields, output)
	}
	return true
}

func (p *recParser) text() bool {
	s := &p.s
	var text recField
	has := false
	ok := s.object(1, func(key []byte) bool {
		if string(key) != "text" {
			return s.value(1)
		}
		if has {
			p.semantic(KindDuplicateField, `duplicate field "text"`)
		}
		has = true
		if c := s.peek(); c != '"' {
			p.semantic(KindWrongType, `"text" is %s, want a string`, jsonTypeName(c))
			return s.value(1)
		}
		var ok bool
		text, ok = p.stringField(tagText)
		return ok
	})
	if !ok {
		return false
	}
	switch {
	case !has:
		p.semantic(KindMissingField, `missing field "text"`)
	case isBlank(text.val):
		p.semantic(KindEmptyField, `"text" is empty`)
	default:
		p.fields = append(p.fields, text)
	}
	return true
}
