"""Turns a (shortened) Wikipedia XML dump into plain article text for calibration.

Usage: python3 scripts/wikiclean.py DUMP.xml.bz2 OUT.txt MAX_BYTES

Drops redirects, templates, tables, references, HTML tags, file/category
links and list/heading lines; keeps link text and article prose (lines of at
least 40 characters), one article per line, cut at MAX_BYTES on a line end.
Deterministic: the same dump gives the same bytes.
"""
import bz2, html, re, sys
def clean(xml):
    out = []
    for t in re.findall(r'<text[^>]*>(.*?)</text>', xml, re.S):
        t = html.unescape(t)
        if t.lstrip().upper().startswith('#REDIRECT'):
            continue
        for _ in range(5):  # nested templates and tables
            t = re.sub(r'\{\{[^{}]*\}\}', '', t)
            t = re.sub(r'\{\|[^{}]*?\|\}', '', t, flags=re.S)
        t = re.sub(r'<ref[^>]*/>', '', t)
        t = re.sub(r'<ref.*?</ref>', '', t, flags=re.S)
        t = re.sub(r'<!--.*?-->', '', t, flags=re.S)
        t = re.sub(r'<[^>]+>', '', t)
        t = re.sub(r'\[\[(?:File|Image|Category|[a-z]{2,3}(?:-[a-z]+)?):[^\]]*\]\]', '', t)
        t = re.sub(r'\[\[(?:[^\]|]*\|)?([^\]]*)\]\]', r'\1', t)
        t = re.sub(r'\[https?://\S+ ([^\]]*)\]', r'\1', t)
        t = re.sub(r"'{2,}", '', t)
        lines = []
        for line in t.split('\n'):
            line = line.strip()
            if not line or line[0] in '|!{}:;*#' or line.startswith('=='):
                continue
            if len(line) < 40:
                continue
            lines.append(line)
        if lines:
            out.append(' '.join(lines))
    return '\n'.join(out) + '\n'
if __name__ == '__main__':
    src, dst, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    text = clean(bz2.decompress(open(src, 'rb').read()).decode('utf-8'))
    open(dst, 'w').write(text[:limit].rsplit('\n', 1)[0] + '\n')
