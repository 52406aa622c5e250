-- Unit history: which earlier units a unit continues (merged communes, old districts and
-- provinces). Old units stay, closed by valid_to, so older records keep their codes.
CREATE TABLE unit_predecessors (
    code             TEXT NOT NULL REFERENCES units (code),
    predecessor_code TEXT NOT NULL REFERENCES units (code),
    PRIMARY KEY (code, predecessor_code)
);
