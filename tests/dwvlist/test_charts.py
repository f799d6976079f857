import xml.etree.ElementTree as ET

from dwvlist.charts import chart_svg_bars, chart_svg_lines

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_bar_chart_is_an_accessible_image_with_title_and_figures_in_words():
    svg = chart_svg_bars(points=[("Jan", 3), ("Feb", 12)], title="Signups per month")
    root = parse(svg)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title.text == "Signups per month"
    assert desc.text == "Jan: 3; Feb: 12"
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"


def test_bar_chart_draws_one_bar_per_point_scaled_to_the_largest():
    root = parse(chart_svg_bars(points=[("a", 5), ("b", 10), ("c", 0)], title="t", height=236))
    bars = root.findall(f"{SVG}rect")
    assert [bar.find(f"{SVG}title").text for bar in bars] == ["a: 5", "b: 10", "c: 0"]
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[1] == 2 * heights[0]
    assert heights[2] == 0


def test_labels_and_titles_are_escaped():
    svg = chart_svg_bars(points=[("<script>alert(1)</script>", 1)], title='A & B "quoted" <b>')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    assert root.find(f"{SVG}title").text == 'A & B "quoted" <b>'


def test_empty_charts_say_there_is_no_data():
    for svg in (chart_svg_bars(points=[], title="Nothing"), chart_svg_lines(series={}, title="Nothing")):
        root = parse(svg)
        assert root.get("role") == "img"
        assert root.find(f"{SVG}desc").text == "No data yet."
        assert "No data yet." in svg


def test_line_chart_has_a_line_and_legend_entry_per_series():
    svg = chart_svg_lines(
        series={"News": [("W1", 1), ("W2", 4)], "Events & more": [("W1", 2), ("W2", 3)]},
        title="Subscribers per list",
    )
    root = parse(svg)
    assert len(root.findall(f".//{SVG}polyline")) == 2
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "News" in texts and "Events & more" in texts
    assert "W1" in texts and "W2" in texts
    assert root.find(f"{SVG}desc").text == "News: W1 1, W2 4. Events & more: W1 2, W2 3"
    points = [c.find(f"{SVG}title").text for c in root.iter(f"{SVG}circle")]
    assert "News, W2: 4" in points


def test_many_labels_are_thinned_so_they_do_not_overlap():
    points = [(f"d{i}", i) for i in range(100)]
    root = parse(chart_svg_bars(points=points, title="t"))
    x_labels = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("d")]
    assert len(x_labels) <= 13
    assert "d0" in x_labels and "d99" in x_labels


def test_axis_uses_round_numbers_and_thousands_separators():
    root = parse(chart_svg_bars(points=[("a", 1_234_567)], title="t"))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "0" in texts
    assert any(text.endswith(",000") for text in texts if text)


def test_same_input_renders_the_same_and_different_charts_get_different_ids():
    a = chart_svg_bars(points=[("a", 1)], title="One")
    assert a == chart_svg_bars(points=[("a", 1)], title="One")
    b = chart_svg_bars(points=[("a", 2)], title="One")
    assert parse(a).find(f"{SVG}title").get("id") != parse(b).find(f"{SVG}title").get("id")
