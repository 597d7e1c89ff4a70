"""Collects pass/fail results per section and group, and prints the summary tables."""
import sys


class Report:
    def __init__(self, verbose_limit=12):
        self.rows = {}      # (section, group) -> [passed, failed]
        self.order = []
        self.failures = []  # (section, group, text)
        self.verbose_limit = verbose_limit

    def record(self, section, group, ok, detail=None):
        key = (section, group)
        if key not in self.rows:
            self.rows[key] = [0, 0]
            self.order.append(key)
        self.rows[key][0 if ok else 1] += 1
        if not ok:
            self.failures.append((section, group, detail or ""))
            shown = sum(1 for f in self.failures if f[0] == section and f[1] == group)
            if shown <= self.verbose_limit:
                sys.stdout.write("FAIL [%s/%s] %s\n" % (section, group, detail))
                sys.stdout.flush()

    def totals(self):
        passed = sum(v[0] for v in self.rows.values())
        failed = sum(v[1] for v in self.rows.values())
        return passed, failed

    def print_tables(self):
        sections = []
        for s, _ in self.order:
            if s not in sections:
                sections.append(s)
        for s in sections:
            keys = [k for k in self.order if k[0] == s]
            width = max([len(g) for _, g in keys] + [10])
            print("\n== %s ==" % s)
            print("  %-*s %8s %8s" % (width, "group", "passed", "failed"))
            for k in keys:
                p, f = self.rows[k]
                print("  %-*s %8d %8d%s" % (width, k[1], p, f, "   <-- FAIL" if f else ""))
        hidden = sum(max(0, v[1] - self.verbose_limit) for v in self.rows.values())
        if hidden > 0:
            print("\n(%d more failure details not shown)" % hidden)
